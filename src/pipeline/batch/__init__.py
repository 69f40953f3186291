"""Batch inference behind ``python -m pipeline.predict``: reading files of raw rows for a logged
model, streaming them through it a chunk at a time, and writing its predictions.

- models: which logged model a ``model=`` option names, whether it exists, loading it;
- layout: what the model takes, read from its signature, as file columns;
- read: input formats and chunk readers;
- columns, images: a chunk's checks and conversions to the model's types;
- stream: the chunk loop (read, check, predict, write);
- write: output formats (ChunkWriter).

MLflow, pyarrow and tqdm are imported inside the functions that use them: importing MLflow takes
seconds, and a wrong argument should be refused before that.
"""
