"""YAML files are read safely and every malformed case names the file."""

from mono_depth_ros.core.yaml_file import read_yaml_mapping
import pytest


class Custom(Exception):
    pass


@pytest.mark.parametrize('text, words', [
    ('a: [1, 2', 'not valid YAML'),
    ('- 1\n- 2\n', 'expected a mapping'),
    ('x: !!python/object/apply:os.system ["true"]\n', 'not valid YAML'),
])
def test_bad_files_raise_the_given_error(tmp_path, text, words):
    path = tmp_path / 'f.yaml'
    path.write_text(text)
    with pytest.raises(Custom, match=words) as info:
        read_yaml_mapping(str(path), Custom)
    assert str(path) in str(info.value)


def test_missing_empty_and_good(tmp_path):
    with pytest.raises(Custom, match='file not found'):
        read_yaml_mapping(str(tmp_path / 'nope.yaml'), Custom)
    empty = tmp_path / 'e.yaml'
    empty.write_text('')
    assert read_yaml_mapping(str(empty)) == {}
    good = tmp_path / 'g.yaml'
    good.write_text('a: 1\nb: {c: [2, 3]}\n')
    assert read_yaml_mapping(str(good)) == {'a': 1, 'b': {'c': [2, 3]}}
