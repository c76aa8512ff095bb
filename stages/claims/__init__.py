"""The four papers' claims as records, each decided from our evaluations with its uncertainty.

A table stage turns evaluations into claim records (``results/<scale>/claims/<paper>.json``); the
tables and the full report render those records and never read verdicts back from prose.

* :mod:`stages.claims.stats`: effects with confidence intervals (scipy.stats, statsmodels) and
  the rules that turn an interval into an outcome.
* :mod:`stages.claims.evidence`: evaluation records -> paired (per-image) or unpaired
  (summary) comparisons, and the degenerate-model check.
* :mod:`stages.claims.record`: the record, its JSON file and its validation.
* :mod:`stages.claims.build`: what every paper's claims share (the models' health, composites).
* one module per paper: :mod:`~stages.claims.lat`, :mod:`~stages.claims.attention_masks`,
  :mod:`~stages.claims.dual_perturbation`, :mod:`~stages.claims.pixel_space`.
* :mod:`stages.claims.render`: the markdown bullets and the report's summary table.
"""
