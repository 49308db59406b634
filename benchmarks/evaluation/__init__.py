"""``gleaner eval``: the thesis's chapter 4 regenerated from real runs
(calibrated loads, the same trace replayed once per policy, one report per DAG)."""
