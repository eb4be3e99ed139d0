"""The controlled world (people, facts, a corpus with known counts) and training a small model on it."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "TRAIN_MARKER": "probe.world._train:TRAIN_MARKER",
    "train_config": "probe.world._train:train_config",
    "train_model": "probe.world._train:train_model",
    "TrainConfig": "probe.world._train:TrainConfig",
    "generate_world": "probe.world._world:generate_world",
    "WorldConfig": "probe.world._world:WorldConfig",
    "world_training_files": "probe.world._world:world_training_files",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
