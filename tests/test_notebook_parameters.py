"""The notebooks' parameters checked up front (``notebook_parameters.check``), without executing a notebook: every
default and every value the tutorial, its tests, scripts and docs pass is accepted; each bad value a learner's trial
of the notebooks found refused late or not at all (user trial T1, findings 4-10, 15, 16) is refused, naming it."""
import ast
import runpy
from pathlib import Path

import nbformat
import pytest

from stepdpo_lite.tutorial import notebook_parameters
from stepdpo_lite.tutorial.notebooks import NOTEBOOK_DIR, RUNNER_PARAMETERS

ROOT = Path(__file__).resolve().parent.parent
CHECKED = {name[:2]: name for name in sorted(p.name for p in NOTEBOOK_DIR.glob("0[1-7]_*.ipynb"))}
CALL = "notebook_parameters.check(globals())"


def _python(cell) -> str:
    """A code cell's source with IPython's ``%``/``!`` lines blanked, as ``notebooks.notebook_parameters`` reads it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())


def _cells(number: str):
    return [c for c in nbformat.read(str(NOTEBOOK_DIR / CHECKED[number]), 4).cells if c.cell_type == "code"]


def defaults(number: str) -> dict:
    """Notebook ``number``'s parameters cell as name -> value (every value there is a literal)."""
    cell = next(c for c in _cells(number) if "parameters" in c.get("metadata", {}).get("tags", []))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(_python(cell)).body}


def _literal(path: Path, name: str):
    """The literal assigned to ``name`` at the top level of the Python file ``path``."""
    node = next(n for n in ast.parse(path.read_text()).body if isinstance(n, ast.Assign) and n.targets[0].id == name)
    return ast.literal_eval(node.value)


def _accepts(number: str, setting: dict) -> None:
    namespace = {**defaults(number), **{k: v for k, v in setting.items() if k in defaults(number)}}
    assert notebook_parameters.check(namespace)


@pytest.mark.parametrize("number", sorted(CHECKED))
def test_each_notebooks_defaults_pass_and_each_of_its_parameters_has_a_spec(number):
    params = defaults(number)
    checked = notebook_parameters.check(params)
    assert set(checked) == set(params) - set(RUNNER_PARAMETERS)
    assert checked == [name for name in notebook_parameters.SPECS if name in params]  # SPECS' order


@pytest.mark.parametrize("number", sorted(CHECKED))
def test_each_setup_cell_checks_the_parameters_before_it_uses_them(number):
    setup = next(c.source for c in _cells(number) if "profile = get_profile(PROFILE)" in c.source)
    assert CALL in setup and setup.index(CALL) < setup.index("profile = get_profile(PROFILE)")
    assert "notebook_parameters" in next(line for line in setup.splitlines()
                                         if line.startswith("from stepdpo_lite.tutorial import "))


@pytest.mark.parametrize("number", sorted(CHECKED))
def test_a_name_with_a_spec_is_assigned_only_as_a_parameter(number):
    """``check(globals())`` reads every name of ``SPECS`` the kernel holds: a later cell that assigned one that is not
    the notebook's parameter would have its value checked as that parameter (a re-run of the setup cell)."""
    assigned = {n.id for cell in _cells(number) for n in ast.walk(ast.parse(_python(cell)))
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    assert (assigned & set(notebook_parameters.SPECS)) - set(defaults(number)) == set()


@pytest.mark.parametrize("number", sorted(CHECKED))
def test_no_cell_but_the_parameters_cell_assigns_a_parameter(number):
    """Notebook 06's setup cell assigned ``N_CANDIDATES = N_CANDIDATES or profile.best_of_n``: run again, it found
    N_CANDIDATES set to the profile's 16 and recorded (``notebooks.notebook_started``) and checked that as the
    learner's value. A value derived from a parameter has a lowercase name (``n_test``, ``n_candidates``)."""
    for index, cell in enumerate(_cells(number)[1:], start=2):
        assigned = {n.id for n in ast.walk(ast.parse(_python(cell))) if isinstance(n, ast.Name)
                    and isinstance(n.ctx, ast.Store)} & set(notebook_parameters.SPECS)
        assert not assigned, f"{CHECKED[number]}: code cell {index} assigns {sorted(assigned)}"


# What the docs and scripts pass (README, docs/exercises.md, docs/benchmarks.md's --set runs, scripts/seed_spread.py,
# scripts/preference_sweep.py's default grid, notebook 04's and 07's own texts)
DOCUMENTED = [
    {"N_TRAIN_ROWS": 200}, {"PROCESS_WEIGHT": 1.0}, {"PROCESS_WEIGHT": 0.0}, {"SFT_WEIGHT": 1.0},
    {"ONPOLICY_PROTOCOL": "first_error"}, {"ONPOLICY_PROTOCOL": "output_layer"}, {"ONPOLICY_SFT_WEIGHT": 1.0},
    {"ONPOLICY_STEP_PAIRING": "first_token", "ONPOLICY_SFT_WEIGHT": 5.0, "ONPOLICY_STEP_GRADIENT": "output_layer",
     "ONPOLICY_STEP_WEIGHT": 50.0, "N_SAMPLED": 8},
    {"SEED": 1}, {"SEED": 2}, {"ONPOLICY_ROUNDS": 0}, {"OUTCOME_WEIGHT": 1.0}, {"RUN_DVTS": False},
    {"BETA": 0.5, "SFT_WEIGHT": 5.0, "OUTCOME_WEIGHT": 0.0, "ONPOLICY_ROUNDS": 0},
    {"N_EXPLORER_PROBLEMS": 20}, {"N_CANDIDATES": 64}, {"N_BEST_OF_N_PROBLEMS": 150}, {"N_TEST_TIME_PROBLEMS": 150},
    {"EXPANSIONS": 2}, {"EXPANSIONS": 8},
]


def test_the_values_the_tutorial_its_tests_scripts_and_docs_pass_are_accepted():
    settings = [_literal(ROOT / "tests" / "test_notebooks.py", "SMALL"),
                _literal(ROOT / "tests" / "test_smoke_notebooks.py", "SMOKE"), *DOCUMENTED,
                *(setting for _, _, setting, _ in runpy.run_path(str(ROOT / "scripts" / "exercise_runs.py"))
                  ["EXERCISES"].values())]
    assert {name for setting in DOCUMENTED for name in setting} <= {name for n in CHECKED for name in defaults(n)}
    for setting in settings:
        for number in CHECKED:
            _accepts(number, setting)


# (notebook, parameter, value): each finding's bad value, and the trial's other cases refused late in the notebook
REFUSED = [
    ("06", "N_CANDIDATES", 0), ("06", "N_TEST_PROBLEMS", 0), ("04", "N_TEST_PROBLEMS", 0),  # 0 was the default
    ("04", "MAX_TRAIN_STEPS", 0), ("04", "LEARNING_RATE", 0.0),
    ("04", "ONPOLICY_STEPS", 0),  # trained by epochs
    ("03", "PROCESS_WEIGHT", 1.5), ("03", "PROCESS_WEIGHT", -0.1),  # a negative weight for one model
    ("04", "SFT_WEIGHT", -1.0), ("04", "BETA", -0.1), ("04", "BETA", 0.0),
    ("04", "ONPOLICY_PAIRS", "steps"), ("04", "N_SAMPLED", 0), ("04", "ONPOLICY_ROUNDS", -1),  # after all training
    ("07", "TEST_TIME_BUDGETS", []), ("07", "TEST_TIME_BUDGETS", 16),  # raw Python errors
    ("07", "TEST_TIME_BUDGETS", [0]), ("07", "TEST_TIME_BUDGETS", [4.0]), ("07", "TEST_TIME_BUDGETS", "4,16"),
    ("07", "MAX_STEPS", 0), ("07", "N_RESAMPLES", 0), ("02", "N_HEATMAP_SOLUTIONS", 0),
    ("05", "N_EXPLORER_PROBLEMS", 0), ("05", "N_PAIRS", 0),  # refused late, naming library arguments
    ("07", "RUN_DVTS", "no"), ("02", "TRAIN_CONTROL", "yes"),  # "no" is true
    ("07", "EXPANSIONS", 0), ("07", "N_TEST_TIME_PROBLEMS", 0), ("07", "TEMPERATURE", -1.0),
    ("06", "N_TEST_PROBLEMS", -5), ("06", "N_CANDIDATES", 4.0), ("06", "N_RESAMPLES", 0),
    ("05", "N_HEATMAP_SOLUTIONS", -1), ("05", "N_BEFORE_AFTER_PROBLEMS", 2.5),
    ("04", "LEARNING_RATE", -1e-4), ("04", "BATCH_SIZE", 0), ("04", "N_TRAIN_PAIRS", 2.5),
    ("04", "ONPOLICY_STEP_PAIRING", "first_eror"), ("04", "ONPOLICY_PROTOCOL", "first_eror"),
    ("02", "N_TRAIN_ROWS", 0), ("02", "N_TRAIN_ROWS", 2.5), ("02", "MAX_TRAIN_STEPS", -1),
    ("02", "QUANTIZATION", "8bit"), ("03", "QUANTIZATION", "4-bit"), ("02", "SEED", -1),
    ("01", "N_TRAIN_PROBLEMS", 0), ("01", "N_SAMPLES", 0),  # 0 was the profile's size (`N or profile's`)
    ("01", "N_MC_ROLLOUTS", 0), ("01", "MC_BUDGET_MINUTES", 0), ("01", "MC_BUDGET_MINUTES", "20"),
]


def test_notebook_01s_budget_takes_inf_for_no_cap():
    assert "MC_BUDGET_MINUTES" in notebook_parameters.check({**defaults("01"), "MC_BUDGET_MINUTES": float("inf")})


@pytest.mark.parametrize("number, name, value", REFUSED)
def test_the_trials_bad_values_are_refused_naming_the_parameter(number, name, value):
    assert name in defaults(number)
    with pytest.raises(ValueError, match=rf"^parameters cell: {name}\b"):
        notebook_parameters.check({**defaults(number), name: value})


def test_a_zero_count_reads_as_none_nowhere_and_none_only_where_it_means_the_default():
    with pytest.raises(ValueError, match=r"N_CANDIDATES must be an int >= 1 or None, got 0"):
        notebook_parameters.check({"N_CANDIDATES": 0})
    for name in ("N_SAMPLED", "BETA", "N_PAIRS", "TEST_TIME_BUDGETS", "RUN_DVTS", "ONPOLICY_PAIRS"):
        with pytest.raises(ValueError, match=rf"{name}.* None"):
            notebook_parameters.check({name: None})
    assert notebook_parameters.check({"N_CANDIDATES": None, "TRAIN_CONTROL": None, "PROCESS_WEIGHT": None,
                                      "ONPOLICY_ROUNDS": 0}) == ["TRAIN_CONTROL", "PROCESS_WEIGHT",
                                                                 "ONPOLICY_ROUNDS", "N_CANDIDATES"]


def test_every_bad_value_is_named_in_one_error():
    with pytest.raises(ValueError, match="2 parameters are refused") as err:
        notebook_parameters.check({**defaults("04"), "BETA": -0.1, "SFT_WEIGHT": -1.0})
    assert "BETA must be > 0, got -0.1" in str(err.value) and "SFT_WEIGHT must be >= 0, got -1.0" in str(err.value)


@pytest.mark.parametrize("number", ["06", "07"])
def test_a_temperature_of_0_is_allowed_with_a_warning(number):
    with pytest.warns(UserWarning, match="TEMPERATURE = 0 samples greedily"):
        notebook_parameters.check({**defaults(number), "TEMPERATURE": 0.0})


def test_names_without_a_spec_are_left_alone_and_a_namespace_must_be_a_mapping():
    assert notebook_parameters.check({"PROFILE": "tiny", "In": [], "THRESHOLD": -1, "pairs": 0}) == []
    with pytest.raises(ValueError, match="check: namespace must be a mapping"):
        notebook_parameters.check([("BETA", 0.1)])


@pytest.mark.parametrize("number", sorted(CHECKED))
def test_each_notebook_says_its_cells_run_in_order_and_what_to_rerun_after_an_edit(number):
    """A learner who edited the parameters cell and reran only it had RUN_DIR and FIGURES_DIR back at None, and every
    later cell that saves a figure failed (TypeError) after recomputing it; one who skipped ahead got a bare NameError
    (a Jupyter trial). The intro says the cells run in order, the parameters cell what to run after editing it."""
    cells = nbformat.read(str(NOTEBOOK_DIR / CHECKED[number]), 4).cells
    intro = " ".join(cells[0].source.split())
    assert "Run the cells in order, from the top" in intro and "Run Selected Cell and All Below" in intro
    assert _cells(number)[0].source.startswith(
        "# after editing this cell, run it and every cell below (Run > Run Selected Cell and All Below)\n")


def test_every_code_line_of_the_notebooks_fits_in_120_characters():
    """The repository's line limit holds in the notebooks too: a parameters-cell comment of 151 characters ran off a
    Colab cell's width, so each long comment is continued on a comment line aligned under it."""
    long_lines = [f"{path.name}: cell {index}, {len(line)} characters: {line[:60]}..."
                  for path in sorted(NOTEBOOK_DIR.glob("*.ipynb"))
                  for index, cell in enumerate(nbformat.read(str(path), 4).cells) if cell.cell_type == "code"
                  for line in cell.source.splitlines() if len(line) > 120]
    assert not long_lines, "\n".join(long_lines)


def test_bounds_that_are_easy_to_get_wrong():
    """A weight that may be None says so in its error; a weight of 0 switches a term off and is allowed; True is
    no budget in minutes (it would be read as 1); the number of Monte-Carlo solutions has no None default."""
    with pytest.raises(ValueError, match=r"ONPOLICY_SFT_WEIGHT must be >= 0 or None, got -1"):
        notebook_parameters.check({"ONPOLICY_SFT_WEIGHT": -1})
    assert notebook_parameters.check({"ONPOLICY_SFT_WEIGHT": 0, "ONPOLICY_STEP_WEIGHT": 0.0, "SFT_WEIGHT": 0})
    with pytest.raises(ValueError, match=r"MC_BUDGET_MINUTES must be minutes > 0"):
        notebook_parameters.check({"MC_BUDGET_MINUTES": True})
    with pytest.raises(ValueError, match=r"N_MC_SOLUTIONS"):
        notebook_parameters.check({"N_MC_SOLUTIONS": None})
