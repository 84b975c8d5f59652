"""Stream positions (comments/cursors.py) and the Comment model's use of them."""

import pytest
from django.db import IntegrityError, transaction
from hypothesis import given
from hypothesis import strategies as st

from comments import cursors, hotstore
from comments.models import Comment
from tests.base import *
from videos.models import Video

ms_values = st.integers(min_value=0, max_value=9_999_999_999_999)
seq_values = st.integers(min_value=0, max_value=999_999)


@given(ms_values, seq_values)
def test_it_round_trips_cursor_and_position(ms, seq):
    cursor = f"{ms}-{seq}"
    assert cursors.is_valid(cursor)
    assert cursors.parse(cursor) == (ms, seq)
    assert cursors.from_position(cursors.to_position(cursor)) == cursor


@given(ms_values, seq_values, ms_values, seq_values)
def test_it_orders_positions_like_stream_ids(ms_a, seq_a, ms_b, seq_b):
    a, b = f"{ms_a}-{seq_a}", f"{ms_b}-{seq_b}"
    expected = ((ms_a, seq_a) > (ms_b, seq_b)) - ((ms_a, seq_a) < (ms_b, seq_b))
    assert cursors.compare(a, b) == expected
    assert (cursors.to_position(a) < cursors.to_position(b)) == ((ms_a, seq_a) < (ms_b, seq_b))


def test_it_sorts_like_redis_not_like_text(redis):
    """Redis orders stream IDs numerically ("999-0" before "1000-0"); positions do too."""
    key = "test:{cursors}:order"
    ids = ["5-0", "5-1", "5-999999", "6-0", "999-0", "1000-0", "1000-10", "1000-9", "1764000000000-0"]
    for entry_id in sorted(ids, key=lambda c: cursors.parse(c)):
        redis.xadd(key, {"x": "1"}, id=entry_id)
    in_redis = [entry_id for entry_id, _ in redis.xrange(key)]
    assert in_redis == sorted(ids, key=cursors.to_position)
    assert in_redis != sorted(ids)  # text order differs


def test_positions_of_appended_events_follow_the_stream(redis, video):
    """Many appends in one millisecond get increasing sequence numbers."""
    appended = [hotstore.append(video.pk, "comment", {"n": i})[1] for i in range(200)]
    in_redis = [entry_id for entry_id, _ in redis.xrange(hotstore.stream_key(video.pk))]
    assert in_redis == appended
    positions = [cursors.to_position(c) for c in appended]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1",
        "1-",
        "-1",
        "a-1",
        "1-a",
        "1-2-3",
        " 1-2",
        "1-2 ",
        "1-2\n",
        "+1-2",
        "1--2",
        "1.0-2",
        "12345678901234-0",
        "1-1234567",
        "１-2",
        "1-٢",
        None,
        12,
        b"1-2",
        ["1-2"],
    ],
)
def test_it_rejects_what_is_not_a_stream_position(bad):
    assert not cursors.is_valid(bad)
    with pytest.raises(cursors.InvalidCursor):
        cursors.parse(bad)
    with pytest.raises(cursors.InvalidCursor):
        cursors.to_position(bad)


def test_it_knows_the_zero_cursor():
    assert cursors.to_position(cursors.ZERO) == 0
    assert cursors.from_position(0) == cursors.ZERO


def test_a_comment_keeps_its_cursor_and_position(video, alice):
    comment = Comment(video=video, author=alice, text="hi")
    comment.set_cursor("1764000000000-7")
    comment.save()
    comment.refresh_from_db()
    assert comment.cursor == "1764000000000-7"
    assert comment.position == 1764000000000 * cursors.SEQ_FACTOR + 7


def test_a_cursor_is_unique_per_video(video, alice):
    other = Video.objects.create(title="other", state=Video.State.LIVE)
    first = Comment(video=video, author=alice, text="a")
    first.set_cursor("1-0")
    first.save()
    same_elsewhere = Comment(video=other, author=alice, text="b")
    same_elsewhere.set_cursor("1-0")
    same_elsewhere.save()  # another video's stream: fine
    clash = Comment(video=video, author=alice, text="c")
    clash.set_cursor("1-0")
    with pytest.raises(IntegrityError), transaction.atomic():
        clash.save()


def test_only_comments_with_a_position_exist_to_readers(video, alice):
    half = Comment.objects.create(video=video, author=alice, text="no position")
    shown = Comment(video=video, author=alice, text="shown")
    shown.set_cursor("2-0")
    shown.save()
    removed = Comment(video=video, author=alice, text="removed", status=Comment.Status.REMOVED)
    removed.set_cursor("3-0")
    removed.save()
    assert set(Comment.objects.in_stream()) == {shown, removed}
    assert list(Comment.objects.visible()) == [shown]
    assert half not in Comment.objects.in_stream()
