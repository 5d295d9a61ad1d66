"""A per-layer report of what a rule decided: `describe(model)`."""

from __future__ import annotations

from flax import nnx

from rules.muon_family import update_text
from rules.nnx_layers import scales_of

COLUMNS = ("path", "role", "shape", "fan_in", "init_std", "multiplier", "lr_multiplier")
# Shown only when some parameter has a value other than 1 (completep's epsilon, user rules).
OPTIONAL_COLUMNS = ("wd_multiplier", "eps_multiplier")
# Shown for models that `rules.parametrize` set up: the factor on the author's own init
# (init="keep"); `init_std` is then what init="rule" would draw.
INIT_FACTOR = "init_factor"
# Shown when Muon updates some parameter: which optimizer updates each one (rules/muon_family.py).
UPDATE_COLUMN = "update"


def branch_rows(model: nnx.Module) -> list[dict]:
    """One row per module holding a `residual_multiplier` (no tensor of its own)."""
    rows = []
    for path, module in nnx.iter_modules(model):
        if hasattr(module, "residual_multiplier"):
            rows.append(
                {
                    "path": "/".join(str(p) for p in path) + "/<branch output>",
                    "role": "branch",
                    "shape": None,
                    "fan_in": None,
                    "init_std": None,
                    "multiplier": float(module.residual_multiplier),
                    "lr_multiplier": None,
                    "wd_multiplier": None,
                    "eps_multiplier": None,
                }
            )
    return rows


def _pseudo_row(path: str, role: str, multiplier: float, fan_in=None) -> dict:
    return {
        "path": path,
        "role": role,
        "shape": None,
        "fan_in": fan_in,
        "init_std": None,
        "multiplier": float(multiplier),
        "lr_multiplier": None,
        "wd_multiplier": None,
        "eps_multiplier": None,
    }


def attention_rows(model: nnx.Module) -> list[dict]:
    """One row per module with an attention `logit_scale` (the factor on q.k, fan_in =
    head_dim), and one per tied readout's `readout_multiplier` (the factor on h @ table^T)."""
    rows = []
    for path, module in nnx.iter_modules(model):
        prefix = "/".join(str(p) for p in path)
        if hasattr(module, "logit_scale"):
            head_dim = getattr(module, "head_dim", None)
            logits = prefix + "/<attention logits>"
            rows.append(_pseudo_row(logits, "attention", module.logit_scale, head_dim))
        if hasattr(module, "readout_multiplier"):
            readout = prefix + "/<tied readout>"
            rows.append(_pseudo_row(readout, "output", module.readout_multiplier))
    return rows


def layer_rows(model: nnx.Module) -> list[dict]:
    """One dict per parameter: path, role, shape, fan_in, init std, multiplier, LR, weight
    decay and Adam epsilon multipliers. Reads metadata and shapes only, so an abstract
    model (`nnx.eval_shape`) gives the same rows without drawing any values."""
    rows = []
    for path, param in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        meta = param.get_metadata().get("meta")
        scales = scales_of(param)
        rows.append(
            {
                "path": "/".join(str(p) for p in path),
                "role": meta.role if meta else "-",
                "shape": tuple(param.shape),
                "fan_in": meta.fan_in if meta else None,
                "init_std": scales.init_std,
                "multiplier": scales.multiplier,
                "lr_multiplier": scales.lr,
                "wd_multiplier": scales.weight_decay,
                "eps_multiplier": scales.adam_eps,
                INIT_FACTOR: param.get_metadata().get(INIT_FACTOR),
                UPDATE_COLUMN: update_text(meta),
            }
        )
    return sorted(rows, key=_model_order(rows))


_ROLE_ORDER = {"input": 0, "hidden": 1, "output": 2}


def _model_order(rows: list[dict]):
    """NNX lists attributes alphabetically; show layers input -> hidden -> output, weights first."""
    layer_rank: dict[str, tuple[int, int]] = {}
    for index, row in enumerate(rows):
        layer = row["path"].rpartition("/")[0]
        rank = _ROLE_ORDER.get(row["role"], 1)
        layer_rank[layer] = min(layer_rank.get(layer, (rank, index)), (rank, index))

    def key(row: dict):
        layer = row["path"].rpartition("/")[0]
        return (*layer_rank[layer], row["role"] in ("bias", "norm"))

    return key


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value) or "()"
    return "-" if value is None else str(value)


def describe(model, title: str = "") -> str:
    """The report as an aligned text table (printed at the start of every training run):
    one row per parameter, then one per residual branch multiplier, attention logit scale
    and tied readout multiplier. `model` is an NNX model, or the `Parametrization` that
    `rules.parametrize` returns for Linen params (anything with report `rows()`; not
    imported here, since rules.parametrization formats its rows with this module)."""
    if not isinstance(model, nnx.Module) and callable(getattr(model, "rows", None)):
        return format_rows(model.rows(), title)
    return format_rows(layer_rows(model), title, branch_rows(model) + attention_rows(model))


def format_rows(rows: list[dict], title: str = "", branches: list[dict] = ()) -> str:
    """Parameter rows (then branch rows) as an aligned table."""
    extra = tuple(c for c in OPTIONAL_COLUMNS if any(r[c] != 1.0 for r in rows))
    if any(r.get(INIT_FACTOR) is not None for r in rows):
        extra += (INIT_FACTOR,)
    if any(str(r.get(UPDATE_COLUMN, "")).startswith("muon") for r in rows):
        extra += (UPDATE_COLUMN,)
    columns = COLUMNS + extra
    rows = list(rows) + list(branches)
    table = [columns] + [tuple(_cell(row.get(c)) for c in columns) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(([title] if title else []) + lines)
