"""The offline datasets as tensorflow-datasets builders, so that with `--data_dir` they are
prepared and read exactly like the real tfds sets (array_record files, no TensorFlow).

Each source in `scaling_data.sources.SOURCES` gets a `GeneratorBasedBuilder` named
`<source>_offline` (e.g. `mnist1d_offline`) whose examples are {"image", "label"}.
"""

from __future__ import annotations

import numpy as np

from scaling_data.sources import SOURCES

_BUILDERS: dict[str, type] = {}  # tfds registers builder classes by name: make each once


def _builder_class(name: str):
    if name in _BUILDERS:
        return _BUILDERS[name]
    import tensorflow_datasets as tfds

    dataset = SOURCES[name]()

    class OfflineBuilder(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=dataset.input_shape, dtype=np.float32),
                    "label": tfds.features.ClassLabel(num_classes=dataset.num_classes),
                }
            )
            return tfds.core.DatasetInfo(
                builder=self,
                features=features,
                supervised_keys=("image", "label"),
                description=f"{name}, generated offline by data.sources.{name}",
                disable_shuffling=True,  # keep the source's order: same batches either way
            )

        def _split_generators(self, dl_manager):
            del dl_manager  # nothing to download
            return {
                "train": self._generate_examples(dataset.x_train, dataset.y_train),
                "test": self._generate_examples(dataset.x_test, dataset.y_test),
            }

        def _generate_examples(self, x, y):
            for index, (image, label) in enumerate(zip(x, y)):
                yield index, {"image": image, "label": int(label)}

    class_name = "".join(part.capitalize() for part in name.split("_")) + "Offline"
    builder = type(class_name, (OfflineBuilder,), {"__module__": __name__})
    _BUILDERS[name] = builder
    return builder


def offline_builder(name: str, data_dir: str):
    """The builder of offline set `name` under `data_dir`, prepared (once) if needed."""
    builder = _builder_class(name)(data_dir=data_dir)
    builder.download_and_prepare(file_format="array_record")
    return builder
