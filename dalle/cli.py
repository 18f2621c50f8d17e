"""Command line: `python -m dalle {train,train-judge,ablate,sample,probe,probe-layouts,probe-ghosts,probe-binding,info,card,prepare,results,evaluate} ...`. Thin: it parses and calls the library.

Every field of `TrainConfig` and `ModelConfig` is a flag (`--batch-size`, `--channel-base`, ...),
so the dataclasses stay the single place where options and their reasons live.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from .config import ModelConfig, TrainConfig
from .datasets import KINDS, known_kind


def parse_bool(text: str) -> bool:
    """A BOOL flag's value: 1, true, yes or on (any case) is True, anything else False."""
    return text.lower() in ("1", "true", "yes", "on")


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, skip: set[str], title: str = "") -> None:
    group = parser.add_argument_group(title or cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = f"{f.metadata.get('help', '')} (default {default})".strip().replace("%", "%%")
        if isinstance(default, bool):
            group.add_argument(flag, type=parse_bool, default=None,
                               metavar="BOOL", help=text)
        elif isinstance(default, (tuple, list)):
            group.add_argument(flag, type=float, nargs="+", default=None, help=text)
        else:
            group.add_argument(flag, type=type(default), default=None, help=text)


def _dataclass_from_args(cls: type, args: argparse.Namespace, **overrides):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
              if getattr(args, f.name, None) is not None}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    return cls(**values)


def _apply_preset(args: argparse.Namespace) -> None:
    """Fill every flag the user left out from the preset (explicit flags win)."""
    from .presets import PRESETS

    if args.preset is None:
        return
    if args.preset not in PRESETS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of: {', '.join(PRESETS)}")
    for name, value in PRESETS[args.preset].items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)


def cmd_train(args: argparse.Namespace) -> int:
    from .datasets import kind_of, open_training_data, option_fields
    from .training.state import run_model_config
    from .training.trainer import Trainer

    if args.preset is None and args.data and kind_of(args.data).name == "folder":
        args.preset = "folder"  # the real-data recipe; flags given on the command line still win
        print("preset: folder (64 px real-data recipe; see `python -m dalle train --help` to change a flag)")
    if args.preset == "folder" and not args.data:
        raise SystemExit("error: --preset folder needs --data PATH (a folder with metadata.jsonl)")
    _apply_preset(args)
    args.data = args.data or "shapes"
    args.resolution = args.resolution or ModelConfig.resolution
    args.out = args.out or f"runs/{Path(args.data).name}-{args.resolution}"
    model_cfg = _dataclass_from_args(ModelConfig, args, resolution=args.resolution)
    if model_cfg.resolution not in (32, 64, 128):
        raise SystemExit("error: --resolution must be 32, 64 or 128")
    cfg = _dataclass_from_args(TrainConfig, args, data=args.data, out=args.out)
    given = {f.name for f in dataclasses.fields(ModelConfig) if getattr(args, f.name, None) is not None}
    model_cfg = run_model_config(model_cfg, given, cfg.out, args.resume, cfg.init_from)
    options = {name: getattr(args, name) for name in option_fields() if getattr(args, name, None) is not None}
    data = open_training_data(cfg.data, model_cfg.resolution, options)
    argv = sys.argv[1:] if args.command_line is None else args.command_line
    trainer = Trainer(model_cfg, cfg, data, command="python -m dalle " + shlex.join(argv))
    out = trainer.run(resume=args.resume, max_steps=args.max_steps)
    print(f"checkpoint: {out}")
    return 0


def cmd_train_judge(args: argparse.Namespace) -> int:
    from .checkpoint import load_networks, model_config, read_config
    from .datasets import open_checkpoint_data
    from .judge import save_judge
    from .training.judge import JudgeSettings, train_judge
    from .text_encoder import encode_captions_cached

    import torch

    torch.set_num_threads(args.threads)
    config = read_config(args.checkpoint)
    cfg = model_config(config)
    data = open_checkpoint_data(config, args.data_root)
    table = encode_captions_cached(cfg.text_encoder, data.captions, args.cache_dir, max_tokens=cfg.max_tokens)
    settings = JudgeSettings(steps=args.steps, seed=args.seed, trunk=args.trunk)
    discriminator = load_networks(args.checkpoint)[2] if args.trunk == "discriminator" else None
    judge, record = train_judge(cfg, data, table.to("cpu", torch.float32), settings, discriminator=discriminator)
    save_judge(judge, args.checkpoint, record)
    print(f"judge: {args.checkpoint}/judge.safetensors ({record['seconds']:.0f} s, {record['images']:,} images)")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from .evaluation.ablation import ablate, parse_variant

    variants = [parse_variant(v) for v in args.variant]
    command = "python -m dalle " + shlex.join(sys.argv[1:] if args.command_line is None else args.command_line)
    print(ablate(variants, args.preset, args.minutes, Path(args.out), args.parallel,
                 Path(args.doc) if args.doc else None, args.title, command))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from .images import save_png
    from .pipeline import TextToImagePipeline
    from .prompts import spell_out_emoji

    pipe = TextToImagePipeline.from_pretrained(args.checkpoint, device=args.device)
    out = pipe(args.prompt, seed=args.seed, truncation=args.truncation, num_images=args.num_images)
    for p in out.prompts:
        if spell_out_emoji(p) != p:
            print(f"note: emoji spelled out for the text encoder: {p!r} reads as {spell_out_emoji(p)!r}", file=sys.stderr)
    for p, cut in zip(out.prompts, out.truncated_prompts):
        if cut:
            print(f"warning: prompt was cut at the encoder's limit: {p[:60]!r}...", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_png(out.grid(), args.out, out.metadata())
    for i, p in enumerate(out.prompts):
        for j, s in enumerate(out.seeds):
            print(f"{p!r} seed={s} realism={out.realism[i, j]:.3f} match={out.match[i, j]:.3f}")
    print(f"wrote {args.out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .checkpoint import read_config

    cfg = read_config(args.checkpoint)
    metrics = Path(args.checkpoint) / "metrics.json"
    if args.json:
        print(json.dumps(cfg, indent=2))
        if metrics.exists():
            print(metrics.read_text())
        return 0
    from .evaluation.metrics_io import read_metrics
    from .evaluation.report import summary

    model, compute = cfg["model"], cfg.get("training_compute") or {}
    print(f"{cfg.get('name', Path(args.checkpoint).name)}: {(cfg.get('dataset') or {}).get('name', '?')}, "
          f"{model['resolution']} px, text encoder {model['text_encoder']}")
    print(f"trained: step {cfg.get('step', 0):,}, {(cfg.get('images_seen') or 0) / 1000:.1f}k images, "
          f"{compute.get('wall_time_s', 0) / 60:.0f} min on {compute.get('device', '?')}")
    if compute.get("command"):
        from .presets import command_note

        shown, note = command_note(compute["command"], model["resolution"])
        print(f"command: {shown}" + (f"\n  ({note})" if note else ""))
    if metrics.exists():
        for name, value in summary(read_metrics(metrics)).items():
            print(f"  {name}: {'-' if value is None else round(value, 3)}")
    else:
        print("no metrics.json yet: python -m dalle evaluate " + str(args.checkpoint))
    print("(--json for the full config and metrics)")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .data.emoji import prepare_emoji, prepare_emoji_names, write_emoji_folder

    if args.dataset == "emoji-names":
        prepare_emoji_names()
    elif args.dataset == "emoji-folder":
        emoji = Path(args.data_root) / "emoji"
        if not (emoji / f"emoji-{args.resolution}.npz").is_file():
            prepare_emoji(emoji, resolution=args.resolution)
        write_emoji_folder(args.out or Path(args.data_root) / f"emoji-{args.style}", args.style, emoji, args.resolution)
    else:
        prepare_emoji(Path(args.data_root) / "emoji", resolution=args.resolution)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate_checkpoint
    from .evaluation.report import format_table

    # shipped checkpoints are tracked files: they are rewritten only when --out names them
    out = args.metrics_out or Path("runs") / "evaluate" / Path(args.checkpoint).resolve().name / "metrics.json"
    metrics = evaluate_checkpoint(args.checkpoint, num_samples=args.num_samples, seed=args.seed,
                                  out=out, truncation=args.truncation, evaluator_dir=args.evaluator,
                                  data_root=args.data_root, sweep=not args.no_sweep, threads=args.threads,
                                  evaluate_as=args.evaluate_as, log=lambda msg: print(msg, file=sys.stderr))
    print(format_table(metrics))
    print(f"wrote {out}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from .checkpoint import read_config
    from .evaluation.metrics_io import read_metrics
    from .evaluation.report import results_table

    folders = [Path(c) for c in args.checkpoints]
    table = results_table([read_metrics(f / "metrics.json") for f in folders], [read_config(f) for f in folders])
    readme = Path(args.readme)
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{readme}: no {start} ... {end} block to replace")
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1], encoding="utf-8")
    print(table)
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from .evaluation.model_card import load_failure_modes, write_model_card

    modes = load_failure_modes(args.failure_modes).get(Path(args.checkpoint).name, []) if args.failure_modes else []
    print(f"wrote {write_model_card(args.checkpoint, modes)}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    import time

    import torch

    from .checkpoint import load_networks
    from .shapes.probes.match import near_miss_accuracy, train_match_head
    from .shapes.world import DEFAULT_MIX, ShapesWorld
    from .text_encoder import encode_captions_cached

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.checkpoint:
        _, _, D = load_networks(args.checkpoint)
        cfg = D.cfg
    else:
        cfg = ModelConfig(resolution=args.resolution, d_word_attention=args.d_word_attention,
                          d_word_order=args.d_word_order)

    def encode(captions: list[str]):
        return encode_captions_cached(cfg.text_encoder, captions, args.cache_dir,
                                      max_tokens=cfg.max_tokens).to("cpu", torch.float32)

    start = time.perf_counter()
    if not args.checkpoint:
        world = ShapesWorld(cfg.resolution, mix=tuple(args.scene_mix) if args.scene_mix else DEFAULT_MIX)
        D = train_match_head(cfg, encode(world.captions), world, args.steps, seed=args.seed)
    result = {name: round(v, 3) for name, v in near_miss_accuracy(D, encode).items()}
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))
    return 0


def cmd_probe_layouts(args: argparse.Namespace) -> int:
    import torch

    from .pipeline import TextToImagePipeline
    from .shapes.probes.layout import seed_layouts

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    _require_shapes(args.checkpoint, "probe-layouts")  # the probe finds objects with the world's analytic checker
    pipe = TextToImagePipeline.from_pretrained(args.checkpoint, device="cpu")
    print(json.dumps(seed_layouts(pipe, args.prompts, args.seeds, args.truncation, args.seed)))
    return 0


def cmd_probe_ghosts(args: argparse.Namespace) -> int:
    import torch

    from .pipeline import TextToImagePipeline
    from .shapes.probes.ghosts import clean_preferred

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    _require_shapes(args.checkpoint, "probe-ghosts")
    pipe = TextToImagePipeline.from_pretrained(args.checkpoint, device="cpu")
    print(json.dumps(clean_preferred(pipe, args.scenes, args.seed)))
    return 0


def _require_shapes(checkpoint: str, verb: str) -> None:
    """Refuse a checkpoint of another world: the shapes probes draw the shapes world's scenes."""
    from .checkpoint import read_config

    dataset = read_config(checkpoint).get("dataset", {}).get("name")
    kind = known_kind(dataset)
    if kind is None or kind.checker is None:
        raise ValueError(f"{verb} needs a shapes checkpoint; {checkpoint} was trained on {dataset!r}")


def cmd_probe_binding(args: argparse.Namespace) -> int:
    import time

    import torch

    from .checkpoint import load_networks
    from .shapes.probes.binding import PAIRS, colour_binding, train_binding
    from .shapes.world import ShapesWorld
    from .text_encoder import encode_captions_cached

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    _apply_preset(args)  # the preset's model fields (its training fields are not used)
    cfg = _dataclass_from_args(ModelConfig, args, resolution=args.resolution or ModelConfig.resolution)
    G = None
    if args.init_from:  # the checkpoint's own model config and EMA generator; the model flags are not used
        _, G, _ = load_networks(args.init_from)
        cfg = G.cfg

    def encode(captions: list[str]):
        return encode_captions_cached(cfg.text_encoder, captions, args.cache_dir,
                                      max_tokens=cfg.max_tokens).to("cpu", torch.float32)

    start = time.perf_counter()
    world = ShapesWorld(cfg.resolution, mix=PAIRS)
    G, E = train_binding(cfg, encode(world.captions), world, args.steps, seed=args.seed, G=G)
    result = {name: round(v, 4) for name, v in colour_binding(G, E, encode).items()}
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dalle", description="Train and sample a text-to-image GAN.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model")
    p.add_argument("--preset", default=None, help="a shipped recipe (shapes, emoji, folder, emoji-32); other flags override it. --data FOLDER alone uses folder")
    p.add_argument("--data", default=None, help="shapes | emoji | path to a folder with metadata.jsonl")
    p.add_argument("--resolution", type=int, default=None, help=f"(default {ModelConfig.resolution})")
    p.add_argument("--out", default=None, help="run directory (default runs/<data>-<resolution>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/state if present")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (for smoke tests)")
    _add_dataclass_flags(p, TrainConfig, skip={"data", "out"})
    _add_dataclass_flags(p, ModelConfig, skip={"resolution"})
    for kind in KINDS.values():
        if kind.options:
            _add_dataclass_flags(p, kind.options, skip=set(), title=f"options of the {kind.name} dataset")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-judge", help="train a checkpoint's text-match judge on its real data (dalle/judge.py)")
    p.add_argument("checkpoint")
    p.add_argument("--steps", type=int, default=2000, help="batches of 64 real images (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trunk", choices=("own", "discriminator"), default="own",
                   help="own: a small image/text network of its own (default); discriminator: a fresh match head on "
                        "the checkpoint's discriminator trunk, frozen (dalle/judge.py)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--data-root", default="data", help="where prepared datasets live (default data)")
    p.add_argument("--cache-dir", default="data/cache", help="caption embedding cache (default data/cache)")
    p.set_defaults(func=cmd_train_judge)

    p = sub.add_parser("ablate", help="train recipe variants for the same minutes each, evaluate, tabulate")
    p.add_argument("--preset", required=True, help="recipe the variants start from (shapes, emoji)")
    p.add_argument("--minutes", type=float, required=True, help="training budget per variant")
    p.add_argument("--variant", action="append", required=True, metavar="NAME=FLAGS",
                   help="repeat: a name and the train flags it adds, e.g. 'no-recon=--recon none'")
    p.add_argument("--parallel", type=int, default=2, help="variants trained at once (one CPU core each)")
    p.add_argument("--out", default="runs/ablation", help="folder for the variants' runs")
    p.add_argument("--doc", default=None, help="Markdown file whose section gets the table (e.g. docs/recipe.md)")
    p.add_argument("--title", default="", help="section title in --doc")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("sample", help="write a grid: rows are prompts, columns are seeds")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=float, default=0.7)
    p.add_argument("--num-images", type=int, default=4)
    p.add_argument("--out", default="grid.png")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("probe", help="can D's match head tell a pair's caption from its flip and colour swap? (shapes)")
    p.add_argument("--checkpoint", default=None, help="score this checkpoint's D (default: train a fresh one)")
    p.add_argument("--steps", type=int, default=2000, help="batches of 32 real images for the fresh D")
    p.add_argument("--d-word-attention", type=parse_bool, default=False,
                   metavar="BOOL", help="the fresh D has the word-region match term")
    p.add_argument("--d-word-order", type=parse_bool, default=False,
                   metavar="BOOL", help="the fresh D's match reads the word-order code, not the pooled sentence")
    p.add_argument("--scene-mix", type=float, nargs=3, default=None, metavar=("SINGLE", "PAIR", "COUNT"),
                   help="shares of the fresh D's training scenes (default the world's)")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    p.add_argument("--cache-dir", default="data/cache", help="caption-embedding cache")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("probe-layouts", help="do the seeds move the shapes? distinct layouts per prompt, generated "
                       "and real (shapes)")
    p.add_argument("checkpoint")
    p.add_argument("--prompts", type=int, default=64, help="distinct captions of the evaluation's seen stream")
    p.add_argument("--seeds", type=int, default=8, help="images per prompt")
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="the seen stream's seed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    p.set_defaults(func=cmd_probe_layouts)

    p = sub.add_parser("probe-ghosts", help="do D's scores and the judge's prefer a real render to the same "
                       "render with a ghost, a missing or an extra object? (shapes)")
    p.add_argument("checkpoint")
    p.add_argument("--scenes", type=int, default=200, help="real scenes of each caption kind (pair, count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    p.set_defaults(func=cmd_probe_ghosts)

    p = sub.add_parser("probe-binding", help="can a fresh G, fitted by reconstruction alone, colour a pair's two "
                       "shapes each by its own word? (shapes)")
    p.add_argument("--preset", default="shapes", help="take the model settings from this recipe (flags win)")
    p.add_argument("--resolution", type=int, default=None, help=f"(default {ModelConfig.resolution})")
    p.add_argument("--steps", type=int, default=2000, help="batches of 32 pair scenes")
    p.add_argument("--init-from", default="", help="start G from this checkpoint folder (its model config wins)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    p.add_argument("--cache-dir", default="data/cache", help="caption-embedding cache")
    _add_dataclass_flags(p, ModelConfig, skip={"resolution"})
    p.set_defaults(func=cmd_probe_binding)

    p = sub.add_parser("info", help="summarise a checkpoint: data, training, headline metrics")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true", help="print the full config.json and metrics.json instead")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("card", help="write a checkpoint's README.md model card from config.json + metrics.json")
    p.add_argument("checkpoint")
    p.add_argument("--failure-modes", default="docs/failure_modes.json",
                   help="JSON {checkpoint name: [failure mode, ...]}, written after looking at samples")
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("prepare", help="build a dataset file (emoji), a captioned folder of one emoji style to train "
                                       "on with --data (emoji-folder), or the package's emoji-name table (emoji-names)")
    p.add_argument("dataset", choices=["emoji", "emoji-folder", "emoji-names"],
                   help="emoji-names rewrites dalle/data/emoji_names.json, which prompts use to spell emoji")
    p.add_argument("--data-root", default="data")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--style", default="fluent", help="emoji-folder: the style to write (google, twitter, fluent)")
    p.add_argument("--out", default=None, help="emoji-folder: the folder to write (default DATA_ROOT/emoji-STYLE)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("results", help="write the README's results table from checkpoints' metrics.json")
    p.add_argument("checkpoints", nargs="+", help="checkpoint folders, in table order")
    p.add_argument("--readme", default="README.md", help="file whose <!-- results --> block is replaced")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("evaluate", help="measure a checkpoint; writes metrics.json and truncation.png")
    p.add_argument("checkpoint")
    p.add_argument("--num-samples", type=int, default=None,
                   help="generated images for the main metrics (default 1000 for shapes and emoji)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=float, default=1.0, help="psi for the main metrics (the sweep adds others)")
    p.add_argument("--out", dest="metrics_out", metavar="PATH", default=None,
                   help="metrics file (default runs/evaluate/NAME/metrics.json; name CHECKPOINT/metrics.json "
                        "to update a checkpoint)")
    p.add_argument("--evaluator", default=None, help="emoji evaluator folder (default checkpoints/evaluator)")
    p.add_argument("--data-root", default="data")
    p.add_argument("--no-sweep", action="store_true", help="skip the truncation sweep")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    p.add_argument("--as", dest="evaluate_as", metavar="DATASET", default=None,
                   help="measure with this dataset's evaluation: 'emoji' for a folder of emoji "
                        "(python -m dalle prepare emoji-folder)")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    args.command_line = argv
    try:
        return args.func(args)
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unwritable --out, missing input, full disk: one line, no traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
