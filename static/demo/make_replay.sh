#!/bin/sh
# Regenerates replay.webm, the 20 s recording the chat replay test plays (Debian's ffmpeg):
# VP9 in WebM, which every Chromium build plays, with the time in the picture
# so screenshots show where the playhead is. Run from the repository root:
# sh static/demo/make_replay.sh
set -e
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "gradients=s=480x270:r=10:d=20:c0=0x1f1147:c1=0x0b4f6c:c2=0x7b1e5a:c3=0x12355b:n=4:speed=0.01" \
  -vf "drawtext=fontfile=$FONT:text='livecomment':fontcolor=white:fontsize=40:x=(w-text_w)/2:y=(h-text_h)/2-30:shadowcolor=black@0.4:shadowx=2:shadowy=2,\
drawtext=fontfile=$FONT:text='RECORDING':fontcolor=white@0.75:fontsize=16:x=(w-text_w)/2:y=(h/2)+10,\
drawtext=fontfile=$FONT:text='%{eif\:t\:d}.%{eif\:mod(t*10\,10)\:d} s':fontcolor=white:fontsize=28:x=(w-text_w)/2:y=(h/2)+40" \
  -c:v libvpx-vp9 -b:v 0 -crf 45 -deadline good -cpu-used 4 -g 10 -pix_fmt yuv420p -an \
  static/demo/replay.webm
ls -l static/demo/replay.webm
