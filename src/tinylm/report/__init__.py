"""`tinylm report`: one self-contained HTML page telling a run's (or a comparison's) story.

facts.py reads the run directories, events.py says which log events are marked and how,
recipe_diff.py finds the keys two recipes differ in, harness_table.py lays out lm-eval's results, plots.py draws, page.py writes the HTML and
build.py puts them together. Not to be confused with tinylm/eval/report.py (where `tinylm eval`
writes its result files): this package only reads what runs, evaluations and fine-tunings wrote.
"""
