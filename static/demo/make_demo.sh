#!/bin/sh
# Regenerates demo.mp4, the looping clip seed_demo's video plays (Debian's ffmpeg).
# Run from the repository root: sh static/demo/make_demo.sh
set -e
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "gradients=s=640x360:r=24:d=8:c0=0x1f1147:c1=0x0b4f6c:c2=0x7b1e5a:c3=0x12355b:n=4:speed=0.015" \
  -vf "drawtext=fontfile=$FONT:text='livecomment':fontcolor=white:fontsize=54:x=(w-text_w)/2:y=(h-text_h)/2-24:shadowcolor=black@0.4:shadowx=2:shadowy=2,\
drawtext=fontfile=$FONT:text='DEMO STREAM':fontcolor=white@0.75:fontsize=20:x=(w-text_w)/2:y=(h/2)+30,\
drawbox=x=24:y=22:w=64:h=26:color=0xcc0000@1:t=fill,\
drawtext=fontfile=$FONT:text='LIVE':fontcolor=white:fontsize=16:x=36:y=27,\
drawtext=fontfile=$FONT:text='%{eif\:t\:d}s':fontcolor=white@0.6:fontsize=16:x=w-text_w-24:y=h-text_h-20" \
  -c:v libx264 -profile:v main -pix_fmt yuv420p -crf 22 -preset slow -movflags +faststart -an \
  static/demo/demo.mp4
ls -l static/demo/demo.mp4
