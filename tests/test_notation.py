"""The notation sheet (sg.notation): linked from every notebook, its code names real, and the symbol clashes it
resolved do not come back into the notebooks' text."""
import json
import re
from pathlib import Path

import pytest

import scoregen_lite as sg

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: a symbol written with the meaning the sheet gives another one -> what the sheet says instead
CLASHES = [
    (r"D\(x", "the denoiser is \\hat x_0(x; sigma) (D is the dimension)"),
    (r"\\sigma\(t\) = \\(?:frac\{)?\\sigma_t", "the noise level sigma_t / alpha_t is sigma, not sigma(t) (the VE function)"),
    (r"guidance scale \$g\$|\)\^g", "the guidance scale is kappa (g is the diffusion coefficient)"),
    (r"\\alpha_i", "the annealed Langevin step is epsilon_i (alpha_t is the VP scale)"),
    (r"U\(\\epsilon", "the smallest time is t_min (epsilon is the Langevin step)"),
    (r"\(1\+\\gamma\)", "EDM's churn factor is eta_i (gamma is the ladder ratio)"),
    (r"notes' design advice", "students do not have the notes: cite the paper and section"),
    (r"\$\\sigma = 25\$", "the tutorial SDE's base is b = 25"),
]


def _markdown(nb_path):
    cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_links_the_sheet_and_keeps_its_symbols(nb_path):
    cells = _markdown(nb_path)
    assert cells[0][0] == 0 and f"]({sg.notation.NOTATION_LINK})" in cells[0][1], \
        f"{nb_path.name}: its header does not link the notation sheet"
    for i, text in cells:
        for pattern, why in CLASHES:
            found = re.search(pattern, text)
            assert not found, f"{nb_path.name} cell {i}: {found.group(0)!r}: {why}"


def test_sheet_code_names_exist_and_symbols_are_unique():
    rows = sg.notation.SYMBOLS
    assert len({r.symbol for r in rows}) == len(rows)
    assert all(r.first in {p.stem[:2] for p in NOTEBOOKS} for r in rows)
    for row in rows:
        for name in re.findall(r"`(sg\.[\w.]+)", row.code):
            obj = sg
            for part in name.split(".")[1:]:
                obj = getattr(obj, part)          # AttributeError names a code name that does not exist
    table = sg.notation.markdown_table()
    assert table.count("\n") == len(rows) + 2 and "| $\\hat x_0(x; \\sigma)$ |" in table


#: how the notebooks' text writes an abbreviation or method where it is not the sheet's name for it
SPELLINGS = {"VE, VP, sub-VP": r"\bVE\b", "FD": r"\bFD\b|Fréchet distance", "CFG": r"\bCFG\b|classifier-free",
             "Tweedie's formula": "Tweedie", "energy distance": "[Ee]nergy distance"}


def test_each_abbreviation_is_first_used_where_the_sheet_says():
    """The sheet's "first in" column is the first notebook whose text uses the term, so no notebook uses one
    before the notebook the sheet sends the student to (issue 24: used before introduced)."""
    text = {p.stem[:2]: "\n".join(t for _, t in _markdown(p)) for p in NOTEBOOKS}
    for abbr, _, first in sg.notation.ABBREVIATIONS:
        pattern = SPELLINGS.get(abbr, rf"(?<!\w){re.escape(abbr)}(?!\w)")
        users = [nb for nb, t in text.items() if re.search(pattern, t)]
        assert users[:1] == [first], f"{abbr}: the sheet says first in {first}; the notebooks' text uses it in {users}"


def test_readme_shows_the_sheet_under_its_anchor():
    readme = (REPO / "README.md").read_text()
    assert sg.notation.NOTATION_LINK.endswith("#notation") and "\n## Notation\n" in readme
    assert sg.notation.sheet() in readme
