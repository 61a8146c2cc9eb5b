"""The tutorial kit: what the notebooks need beyond the library, and nothing a user's own code must import.

- the tasks: the toy arithmetic world (``toyworld``: problems, checker, tiny models) and GSM8K (``gsm8k``), behind one
  interface (``tasks``), with the pairs and labels built from their checkers (``labelling``);
- notebook profiles (``profiles``, ``smoke``), run folders and metrics (``runs``), pictures (``viz``) and what they
  show of the reward models (``diagnostics``; what the pictures draw and their text reads off them,
  ``step_reward_summaries``) and of the trained policies' credit per step (``credit``); the reward models' records
  in ``metrics.json`` (``reward_reports``);
- what the notebooks compute with the library: best-of-N (``bestofn``), PRM-guided search (``search``: its
  generation with exact token counts in ``step_generation``, its reports in ``search_report``), on-policy
  rounds (``onpolicy``, on pairs built from a PRM's step labels, ``prm_pairs``, with two more step losses on the
  plumbing of ``critical_token``: through the output layer only, ``output_layer_pairs`` (the tiny profile's
  protocol), and on rejected tokens redrawn from the current policy, ``fresh_rejected_pairs`` (a diagnostic); a
  diagnostic NLL on the right opening of the rejected solutions, ``rejected_prefix_nll``; and a diagnostic
  unlikelihood of the wrong steps no correction was found for, ``uncorrected_unlikelihood``),
  verifier pretraining (``verifier_pretraining``), Monte-Carlo budgets (``budget``);
- the notebook runner (``notebooks``, also ``python -m stepdpo_lite.tutorial``) and the Colab setup (``colab``).

The library (``stepdpo_lite``'s top-level modules) never imports anything from here.
"""
