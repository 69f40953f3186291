"""What a logged model takes, read from its signature, in terms of a file's columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError

ID_COLUMN = "id"  # copied to the output, never given to the model
LABEL_COLUMN = "label"  # ignored in image files (Kaggle's fashion-mnist CSV has one)
IMAGE_COLUMN = "image"  # the column of a model with one unnamed image input


@dataclass
class Layout:
    """The model's inputs as file columns: named columns (ColSpec) or image tensors."""

    tensors: bool
    specs: dict[str, Any]  # file column -> ColSpec or TensorSpec
    unnamed: bool = False  # one unnamed tensor: give the model the array, not a dict

    @classmethod
    def of(cls, model, uri: str) -> Layout:
        schema = model.metadata.get_input_schema()
        if schema is None:
            raise ConfigError(
                f"The model {uri} has no input signature; predict reads a file's columns by the signature."
            )
        if schema.is_tensor_spec():
            specs = schema.inputs
            if len(specs) == 1 and specs[0].name is None:
                return cls(True, {IMAGE_COLUMN: specs[0]}, unnamed=True)
            return cls(True, {spec.name: spec for spec in specs})
        return cls(False, {spec.name: spec for spec in schema.inputs})

    @property
    def names(self) -> list[str]:
        return list(self.specs)

    @property
    def required(self) -> list[str]:
        return [name for name, spec in self.specs.items() if getattr(spec, "required", True)]

    def ignored(self) -> set[str]:
        return {ID_COLUMN, LABEL_COLUMN} if self.tensors else {ID_COLUMN}

    def text_column(self) -> str | None:
        """The one string column of a text model (what a .txt file's lines are)."""
        from mlflow.types import DataType

        if self.tensors or len(self.specs) != 1:
            return None
        name, spec = next(iter(self.specs.items()))
        return name if spec.type == DataType.string else None

    def describe(self) -> str:
        if not self.tensors:
            return ", ".join(self.names)
        return ", ".join(
            f"{name} ({'x'.join(map(str, spec.shape[1:]))} {spec.type} images)"
            for name, spec in self.specs.items()
        )


def is_number(spec) -> bool:
    from mlflow.types import DataType

    return spec.type in (DataType.double, DataType.float, DataType.long, DataType.integer)
