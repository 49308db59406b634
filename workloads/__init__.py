"""workloads

The sample DAG workloads and their inputs:

- ``demo/``: the small skewed DAG of ``make demo`` (``gleaner up --demo``), pure Python;
- the three skew-aware workloads of the thesis (Table 3.1, Appendix A), each a folder
  with its functions (one directory per function, ``__main__.py`` inside), the DAG as
  Composer JavaScript (``DAG.js``) and as ``compose`` wrote it (``DAG.json``), its DAG
  and user allocations (``workload.py``) and a seeded input generator (``inputs.py``):
  ``video_analytics/``, ``parallel_aes/``, ``ml_pipeline/``;
- ``catalog.py``: the workloads by name (``WORKLOADS``), each imported only when named;
- ``deploy.py``: packaging and registration over the REST API
  (``python -m workloads.deploy --all``);
- ``image.py``: the runtime image with the functions' libraries
  (``python -m workloads.image``);
- ``local.py`` / ``harness.py``: run functions or a whole DAG on the host or in a
  container without the platform; ``measure.py``: skew and core-scaling figures.
"""
