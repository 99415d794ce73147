"""The workflow's steps (the `[train]` extra: torch, datasets, pandas, matplotlib): step 1 counting, step 2
masking, step 3 model + training, step 4 evaluation (+ references, the other detectors), step 5 comparison,
and the analyses after training (posthoc: quantisation and filtered tables; weight_analysis; plots). Two file
families have modules of their own, so their readers need not load their writers: count_files (step 1's
counts and token ids) and results (step 4's results, predictions and references files).

Each step reads the files the step before wrote and writes its own; the detector they produce is the core's
(`wldetect.WLDetect`), which imports nothing from here.
"""
