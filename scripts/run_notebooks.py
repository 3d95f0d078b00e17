"""Execute the course notebooks in order and save the executed copies outside git.

Used by ``./course run`` (the main job). Reads each ``notebooks/NN_*.py`` (the jupytext
source), executes it in a fresh kernel whose working directory is ``notebooks/`` (as nbval
does), and writes the executed notebook to ``<output_dir>/notebooks/NN_*.ipynb``. Figures are
saved by the notebooks themselves into the profile's figures folder. Stops at the first
failing notebook (later notebooks build on earlier ones) and says where its executed copy is.

    python scripts/run_notebooks.py [--only 03 05] [--timeout 900]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from fgfs_lib import config
from fgfs_lib.utils import atomic_path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="notebook numbers to run, e.g. 00 03")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = parser.parse_args(argv)

    cfg = config.load()
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    if args.only:
        sources = [p for p in sources if p.name[:2] in set(args.only)]
    out_dir = cfg.output_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"profile: {cfg.profile}; {len(sources)} notebooks; executed copies -> {out_dir}", flush=True)

    figures_before = {p: p.stat().st_mtime for p in cfg.figures_dir.glob("*.png")} if cfg.figures_dir.exists() else {}
    total = 0.0
    for source in sources:
        notebook = jupytext.read(source)
        client = NotebookClient(
            notebook, timeout=args.timeout, kernel_name="python3",
            resources={"metadata": {"path": str(source.parent)}},
        )
        target = out_dir / (source.stem + ".ipynb")
        start = time.perf_counter()
        failed: Exception | None = None
        try:
            client.execute()
        except CellExecutionError as error:
            failed = error
        seconds = time.perf_counter() - start
        total += seconds
        with atomic_path(target) as tmp:
            nbformat.write(notebook, tmp)
        status = "ok" if failed is None else "FAILED"
        print(f"{source.name:<40} {status:<6} {seconds:7.1f} s  -> {target}", flush=True)
        if failed is not None:
            print(f"\n{failed}\n\nThe executed copy with the error is {target}", file=sys.stderr)
            return 1

    figures = sorted(
        p for p in cfg.figures_dir.glob("*.png") if figures_before.get(p) != p.stat().st_mtime
    ) if cfg.figures_dir.exists() else []
    print(f"\nall {len(sources)} notebooks ran in {total / 60:.1f} min")
    print(f"executed notebooks: {out_dir}")
    print(f"figures ({len(figures)} written): {cfg.figures_dir}")
    for path in figures:
        print(f"  {path.name}")
    print(f"checkpoints and data: {cfg.checkpoint_dir}, {cfg.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
