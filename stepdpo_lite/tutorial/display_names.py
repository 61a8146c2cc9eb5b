"""What the kit's methods and policies are called in every figure and printed line, and how a step is quoted.

``POLICY_NAMES`` and ``METHOD_NAMES`` (read through ``method_name``) turn the code keys that ``metrics.json`` keeps
(``prm_min``, ``dpo``) into the words the notebooks' text uses ("PRM, min", "DPO + NLL"); ``step_body`` is a step
without its "Step k:", as the pictures and texts quote it. Torch- and matplotlib-free, and it imports nothing of the
kit, so that ``viz``, ``bestofn``, ``search_report``, ``step_reward_summaries``, ``onpolicy_report`` and
``policy_eval`` all print the same words.
"""

from __future__ import annotations

import re

# What each policy of notebooks 04 and 06 is called in every figure and printed line (``method_name`` reads this dict):
# all but the base are trained with the NLL term of the chosen solutions, and the names say so. Here, torch- and
# matplotlib-free, so that viz, bestofn, search and onpolicy_report all print the same words.
POLICY_NAMES = {"base": "base", "dpo": "DPO + NLL", "stepwise_dpo": "Stepwise DPO + NLL", "nll_only": "NLL only (RFT)",
                "step_dpo": "Step-DPO + NLL"}  # the last: notebook 04's run on notebook 01's Step-DPO pairs
# What a method's code key is called in a figure's key and a printed table (``method_name``), in the words the
# notebooks' text uses; metrics.json keeps the keys.
METHOD_NAMES = {"prm_min": "PRM, min", "prm_product": "PRM, product", "prm_last": "PRM, last", "orm": "ORM",
                "combined": "combined (PRM + ORM)", "majority": "majority vote", "random": "random pick",
                "best_of_n_orm": "best-of-N, ORM", "best_of_n_prm": "best-of-N, PRM", "beam_prm": "beam search, PRM",
                "dvts_prm": "DVTS, PRM", **POLICY_NAMES}


def method_name(key: str) -> str:
    """A method's or policy's name in every figure and printed table (``METHOD_NAMES``), e.g. "PRM, min" for
    "prm_min", "DPO + NLL" for "dpo"; a key of one's own as it is."""
    return METHOD_NAMES.get(key, key)


def step_body(step: str) -> str:
    """A step without its "Step k:" (both tasks' solutions number their steps so) and the whitespace before it, its
    answer line kept, as the notebooks' pictures and texts quote it."""
    return re.sub(r"^\s*Step \d+:\s*", "", step)
