"""The demo's rosbag2 folder, read back with an independent reader (rosbags from PyPI)."""

import os

from mono_depth_ros.tools.rosbag2_writer import Rosbag2Writer
import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore, Stores
from sensor_msgs.msg import Image, PointCloud2
import yaml


STORE = get_typestore(Stores.ROS2_HUMBLE)


def read_bag(folder):
    """Return {topic: [(time_ns, decoded message)]} and the reader's connections."""
    out = {}
    with Reader(folder) as reader:
        connections = {c.topic: c for c in reader.connections}
        for conn, stamp, raw in reader.messages():
            msg = STORE.deserialize_cdr(raw, conn.msgtype)
            out.setdefault(conn.topic, []).append((stamp, msg))
        meta = (reader.message_count, reader.start_time, reader.duration)
    return out, connections, meta


def check_rosbag2_folder(folder, min_topics):
    """Assert folder is a finished rosbag2 mcap bag; return what rosbags reads from it."""
    assert sorted(os.listdir(folder)) == sorted(['metadata.yaml',
                                                 f'{os.path.basename(folder)}_0.mcap'])
    info = yaml.safe_load(open(os.path.join(folder, 'metadata.yaml')))
    info = info['rosbag2_bagfile_information']
    assert info['storage_identifier'] == 'mcap' and info['version'] == 5
    messages, connections, (count, start, duration) = read_bag(folder)
    assert min_topics <= set(messages)
    assert count == info['message_count'] == sum(len(m) for m in messages.values())
    for entry in info['topics_with_message_count']:
        topic = entry['topic_metadata']['name']
        assert len(messages[topic]) == entry['message_count']
        assert connections[topic].msgtype == entry['topic_metadata']['type']
    stamps = [t for msgs in messages.values() for t, _ in msgs]
    assert start == min(stamps) == info['starting_time']['nanoseconds_since_epoch']
    assert max(stamps) - min(stamps) == info['duration']['nanoseconds']
    return messages


def test_writer_round_trips_through_rosbags(tmp_path):
    folder = tmp_path / 'bag'
    writer = Rosbag2Writer(str(folder), ros_distro='kilted')
    depth = np.linspace(0.5, 4.0, 12, dtype=np.float32).reshape(3, 4)
    for i in range(3):
        msg = Image(height=3, width=4, encoding='32FC1', step=16, data=(depth + i).tobytes())
        msg.header.frame_id = 'cam_optical'
        msg.header.stamp.sec = 100 + i
        writer.write('/depth', Image, serialize_message(msg), 1_000_000_000 * (10 + i))
    writer.write('/points', PointCloud2, serialize_message(PointCloud2(height=1, width=7)),
                 10_500_000_000)
    assert not folder.exists(), 'the bag appears only when it is finished'
    writer.close()
    messages = check_rosbag2_folder(str(folder), {'/depth', '/points'})
    stamps = [t for t, _ in messages['/depth']]
    assert stamps == [10_000_000_000, 11_000_000_000, 12_000_000_000]
    last = messages['/depth'][-1][1]
    assert (last.encoding, last.width, last.header.frame_id, last.header.stamp.sec) == (
        '32FC1', 4, 'cam_optical', 102)
    assert np.array_equal(np.frombuffer(bytes(last.data), np.float32).reshape(3, 4), depth + 2)
    assert messages['/points'][0][1].width == 7


def test_writer_refuses_an_unknown_message_type(tmp_path):
    class NotAMessage:
        __module__ = 'nowhere_msgs.msg._x'

    writer = Rosbag2Writer(str(tmp_path / 'bag'))
    with pytest.raises(FileNotFoundError, match='nowhere_msgs/msg/NotAMessage'):
        writer.write('/x', NotAMessage, b'', 1)
