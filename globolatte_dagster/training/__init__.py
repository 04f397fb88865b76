"""Training as a process: the folder a training run reads and writes, and its entry point (no Dagster).

`folder.py` defines the input and output folders; `job.py` is the entry point that every out-of-process
path runs (`python -m globolatte_dagster.training.job`), a subprocess of the Dagster run or an Azure ML
command job, reporting back through Dagster Pipes (`dagster_pipes` only, never `dagster`).
"""
