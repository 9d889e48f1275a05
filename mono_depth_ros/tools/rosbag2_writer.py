"""
Write a rosbag2 folder in the layout ``ros2 bag record -s mcap`` produces, without rosbag2.

    demo_bag/
      metadata.yaml        rosbag2_bagfile_information, version 5 (Humble reads it, and
                           every later distribution)
      demo_bag_0.mcap      profile ros2, ros2msg schemas, CDR messages, zstd chunks

Messages arrive already serialised (CDR, from a raw subscription) and are written as they
are. The folder is written as ``<name>.tmp`` and renamed when closed, so a half-written bag
is never mistaken for a finished one. ``ros2 bag info`` / ``ros2 bag play`` and Foxglove open
the result; so does the ``rosbags`` reader.
"""

import os
import re
import shutil
import sys

import yaml

METADATA_VERSION = 5
BUILTIN = {'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16',
           'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring'}


def msg_search_path():
    """Return the prefixes whose share/ folders hold .msg definitions."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    return prefixes + [sys.prefix]


def msg_text(full_type):
    """Return the .msg definition of 'pkg/msg/Type' from an installed share/ folder."""
    pkg, _, name = full_type.split('/')
    for prefix in msg_search_path():
        path = os.path.join(prefix, 'share', pkg, 'msg', name + '.msg')
        if os.path.isfile(path):
            with open(path, encoding='utf-8') as handle:
                return handle.read()
    raise FileNotFoundError(f'no .msg definition for {full_type} under {msg_search_path()}')


def dependencies(pkg, text):
    """Return the message types that the fields of a .msg text refer to."""
    deps = []
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) > 1 and '=' in parts[1]:
            continue  # a constant
        field_type = re.split(r'[\s<\[]', line, maxsplit=1)[0]
        if field_type in BUILTIN or field_type.startswith('string<'):
            continue
        if '/' in field_type:
            dep_pkg, dep_name = field_type.split('/')[0], field_type.split('/')[-1]
        else:
            dep_pkg, dep_name = pkg, field_type
        deps.append(f'{dep_pkg}/msg/{dep_name}')
    return deps


def schema_text(full_type):
    """Concatenate a type's definition and its dependencies (the ros2msg MCAP convention)."""
    main = msg_text(full_type)
    parts, seen, queue = [main], {full_type}, dependencies(full_type.split('/')[0], main)
    while queue:
        dep = queue.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        text = msg_text(dep)
        pkg, _, name = dep.split('/')
        parts.append('=' * 80 + f'\nMSG: {pkg}/{name}\n' + text)
        queue.extend(dependencies(pkg, text))
    return '\n'.join(parts)


def type_name(msg_type):
    """Return 'pkg/msg/Type' for a generated message class."""
    return f'{msg_type.__module__.split(".")[0]}/msg/{msg_type.__name__}'


class Rosbag2Writer:
    """Write raw CDR messages into a rosbag2 folder with one MCAP file."""

    def __init__(self, folder, ros_distro=None):
        from mcap.writer import CompressionType, Writer
        self.folder = os.path.abspath(folder)
        self.name = os.path.basename(self.folder)
        self.tmp = self.folder + '.tmp'
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        self.file_name = f'{self.name}_0.mcap'
        self._handle = open(os.path.join(self.tmp, self.file_name), 'wb')
        self.writer = Writer(self._handle, compression=CompressionType.ZSTD)
        self.writer.start(profile='ros2', library='mono_depth_ros rosbag2_writer')
        self.ros_distro = ros_distro or os.environ.get('ROS_DISTRO', '')
        self.channels = {}
        self.counts = {}
        self.first_ns = None
        self.last_ns = None
        self.count = 0

    def channel(self, topic, msg_type):
        """Return the MCAP channel of topic, registering it and its schema once."""
        if topic not in self.channels:
            full = type_name(msg_type)
            schema = self.writer.register_schema(name=full, encoding='ros2msg',
                                                 data=schema_text(full).encode())
            self.channels[topic] = (self.writer.register_channel(
                topic=topic, message_encoding='cdr', schema_id=schema), full)
            self.counts[topic] = 0
        return self.channels[topic][0]

    def write(self, topic, msg_type, data, stamp_ns):
        """Add one serialised message, received at stamp_ns (ns since the epoch)."""
        self.writer.add_message(channel_id=self.channel(topic, msg_type), log_time=stamp_ns,
                                data=data, publish_time=stamp_ns, sequence=self.count)
        self.counts[topic] += 1
        self.count += 1
        self.first_ns = stamp_ns if self.first_ns is None else min(self.first_ns, stamp_ns)
        self.last_ns = stamp_ns if self.last_ns is None else max(self.last_ns, stamp_ns)

    def metadata(self):
        """Return the metadata.yaml content rosbag2 writes for this bag (version 5)."""
        start = self.first_ns or 0
        duration = (self.last_ns - self.first_ns) if self.count else 0
        topics = [{'topic_metadata': {'name': topic, 'type': full,
                                      'serialization_format': 'cdr',
                                      'offered_qos_profiles': ''},
                   'message_count': self.counts[topic]}
                  for topic, (_, full) in sorted(self.channels.items())]
        return {'rosbag2_bagfile_information': {
            'version': METADATA_VERSION,
            'storage_identifier': 'mcap',
            'duration': {'nanoseconds': duration},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': self.count,
            'topics_with_message_count': topics,
            # rosbag2's own (file or message) compression: none; the MCAP chunks are zstd.
            'compression_format': '',
            'compression_mode': '',
            'relative_file_paths': [self.file_name],
            'files': [{'path': self.file_name,
                       'starting_time': {'nanoseconds_since_epoch': start},
                       'duration': {'nanoseconds': duration},
                       'message_count': self.count}],
        }}

    def close(self):
        """Finish the MCAP file, write metadata.yaml and move the folder into place."""
        self.writer.finish()
        self._handle.close()
        with open(os.path.join(self.tmp, 'metadata.yaml'), 'w', encoding='utf-8') as handle:
            yaml.safe_dump(self.metadata(), handle, sort_keys=False)
        shutil.rmtree(self.folder, ignore_errors=True)
        os.replace(self.tmp, self.folder)

    def size_bytes(self):
        """Return the bag folder's size on disk."""
        return sum(os.path.getsize(os.path.join(self.folder, f))
                   for f in os.listdir(self.folder))
