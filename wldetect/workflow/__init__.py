"""The workflow around the steps (the `[workflow]` extra: papermill, nbclient, Ray): run records (`runs`),
the code the step notebooks' cells call (`cells`), executing notebooks headlessly, sweeps and the demo
(`notebooks`), and where their kernels run (`executors`: local processes or a Ray cluster).
"""
