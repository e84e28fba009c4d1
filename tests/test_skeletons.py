"""The skeletons students start from: the contract's signatures, and docstrings that tell the
truth about what the checks enforce."""

import ast
from pathlib import Path

import pytest

from dlgrade.rubric import ACTIVITIES
from tests.helpers import REFERENCE

SKELETONS = Path(__file__).resolve().parent.parent / "dlgrade" / "skeletons"
MODULES = [module for module, _ in ACTIVITIES.values()]


def signatures(path: Path) -> dict[str, str]:
    """Public function name → its signature as source (names, kinds and defaults)."""
    tree = ast.parse(path.read_text())
    return {
        node.name: ast.unparse(node.args)
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    }


@pytest.mark.parametrize("module", MODULES)
def test_every_skeleton_signature_equals_the_references(module):
    skeleton = signatures(SKELETONS / f"{module}.py")
    reference = signatures(REFERENCE / f"{module}.py")
    assert skeleton == reference


def test_every_declared_activity_has_a_skeleton_a_reference_variants_and_mutants():
    """An activity is its rubric's declaration (dlgrade/activities.py); everything else it
    needs is listed here so that a forgotten file fails instead of silently losing a test."""
    from tests.helpers import MUTANTS, VARIANTS

    missing = []
    for activity, (module, _title) in ACTIVITIES.items():
        wanted = [SKELETONS / f"{module}.py", REFERENCE / f"{module}.py"]
        styles = [f for f in sorted(VARIANTS.iterdir()) if f.is_dir() and f.name[0] not in "_."]
        wanted += [style / f"{module}.py" for style in styles]
        missing += [str(path) for path in wanted if not path.is_file()]
        if not list(MUTANTS.glob(f"{activity}-*.mutant")):
            missing.append(f"{MUTANTS}/{activity}-*.mutant")
    assert not missing, "an activity lacks: " + ", ".join(missing)


def test_signatures_differ_when_a_default_differs(tmp_path):
    """The comparison above sees a changed default (it could otherwise pass on anything)."""
    changed = (
        (SKELETONS / "activity_1_01.py").read_text().replace("iterations=10_000", "iterations=100")
    )
    (tmp_path / "activity_1_01.py").write_text(changed)
    assert signatures(tmp_path / "activity_1_01.py") != signatures(REFERENCE / "activity_1_01.py")


#: claims a docstring made that were false (issue 12), and what each must not say again
FALSE_CLAIMS = {
    "activity_3_01": ["has no ``ImageDataGenerator``", "has no ImageDataGenerator"],
    "activity_3_02": ["``features_train``"],
    "activity_7_01": ["the grader times this function"],
}


@pytest.mark.parametrize("module", sorted(FALSE_CLAIMS))
def test_docstrings_no_longer_state_what_is_false(module):
    text = (SKELETONS / f"{module}.py").read_text()
    for claim in FALSE_CLAIMS[module]:
        assert claim not in text


#: requirements checks enforce that a student could not guess: each must be in a docstring
STATED = {
    "activity_1_01": ["x**2 - 4", "not the signed"],
    "activity_2_01": ["df.iloc[:, :-1]", "at ``path``"],
    "activity_3_01": ["reshape(60000, 28, 28, 1)", "tensorflow.keras.preprocessing.image"],
    "activity_3_02": ["[0, 1]", "preprocess_input", "``val_dir``", "Raw 0-255 pixels are not"],
    "activity_4_01": ["nltk.data.path.insert", "dlgrade data fetch nltk"],
    "activity_6_01": ["unbuilt"],
    "activity_7_01": ["i % 50 == 0", "0, 50, 100", "trainable"],
}


@pytest.mark.parametrize("module", sorted(STATED))
def test_docstrings_state_what_the_checks_enforce(module):
    text = " ".join((SKELETONS / f"{module}.py").read_text().split())
    for words in STATED[module]:
        assert words in text, words
