"""Config layers: defaults <- YAML <- --set, unknown keys rejected, run files written."""

import pytest
from training.config import (CONFIG_DIR, ConfigError, load_config, parse_override,
                             write_run_files)
import yaml

EXPERIMENTS = ('smoke', 'nyu_mobilenetv2', 'nyu_mobilenetv2_frozen', 'nyu_squeezenet',
               'nyu_eigen_multiscale', 'kitti_resnet18')


def test_merge_and_typed_overrides(tmp_path):
    exp = tmp_path / 'exp.yaml'
    exp.write_text('optim:\n  lr: 0.01\nmodel:\n  args:\n    width_mult: 0.5\n')
    config = load_config(str(exp), ['optim.lr=3e-4', 'data.batch_size=2',
                                    'augment.hflip=0', 'data.root=', 'model.args.output=inverse'])
    assert config['optim']['lr'] == pytest.approx(3e-4)
    assert config['data']['batch_size'] == 2 and config['augment']['hflip'] == 0
    assert config['data']['root'] == ''
    assert config['model']['args'] == {'width_mult': 0.5, 'output': 'inverse'}
    assert config['optim']['weight_decay'] == pytest.approx(1e-4)  # untouched default
    assert parse_override('a.b=[1, 2]') == {'a': {'b': [1, 2]}}
    swapped = load_config(str(exp), ['model.arch=squeezenet_unet', 'model.args={output: depth}'])
    assert swapped['model']['args'] == {'output': 'depth'}  # whole mappings replace


def test_unknown_keys_and_bad_values_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r'optim.lrr.*did you mean optim.lr'):
        load_config(None, ['optim.lrr=1'])
    bad = tmp_path / 'bad.yaml'
    bad.write_text('data:\n  batchsize: 4\n')
    with pytest.raises(ConfigError, match='data.batchsize'):
        load_config(str(bad))
    with pytest.raises(ConfigError, match='key=value'):
        load_config(None, ['optim.lr'])
    with pytest.raises(ConfigError, match='optim.optimizer'):
        load_config(None, ['optim.optimizer=sgd'])
    with pytest.raises(ConfigError, match='mapping'):
        load_config(None, ['optim=3'])


@pytest.mark.needs_torch
@pytest.mark.parametrize('name', EXPERIMENTS)
def test_shipped_configs_resolve(name):
    config = load_config(f'{CONFIG_DIR}/{name}.yaml')
    from training.networks import arch_arg_names
    accepted = arch_arg_names(config['model']['arch'])
    assert set(config['model']['args']) <= set(accepted)


def test_run_files(tmp_path):
    config = load_config(None, ['seed=7'])
    write_run_files(str(tmp_path), config)
    assert yaml.safe_load((tmp_path / 'config.yaml').read_text()) == config
    assert (tmp_path / 'git_revision.txt').exists()
