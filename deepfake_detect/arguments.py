"""The scripts' command-line arguments: the argparse builders (--config, --verbose, --shard, --workers, --ray) and folding the flags into the settings."""

import argparse
import os
from pathlib import Path

from deepfake_detect.settings import ConfigError, check_ray_installed, load_config


def parse_shard(text):
    """'2/4' -> (2, 4): this machine takes the 2nd of every 4 videos. Raises ConfigError."""
    try:
        part, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: write K/N, e.g. 1/4 on the first of four machines") from None
    if not 1 <= part <= count:
        raise ConfigError(f"--shard {text!r}: K must be between 1 and N")
    return part, count


def comma_list(text):
    """'noise, blur' -> ['noise', 'blur']."""
    return [part.strip() for part in text.split(",") if part.strip()]


def add_config_argument(parser):
    """Add --config PATH to an argparse parser."""
    parser.add_argument("--config", type=Path, default=None,
                        help="settings file (default: config.py); may hold only what differs")


def add_shard_argument(parser):
    """Add --shard K/N to an argparse parser."""
    parser.add_argument("--shard", type=str, default="1/1", metavar="K/N",
                        help="process only the K-th of every N videos, to split a dataset "
                             "across N machines (1/3, 2/3, 3/3); default 1/1")


def add_ray_argument(parser):
    """Add --ray [ADDRESS] to the parser of a stage that runs its videos through jobs.pool.run_jobs."""
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run one task per video on a Ray cluster: ADDRESS (host:6379), else config "
                             "RAY_ADDRESS / $RAY_ADDRESS, else 'auto' (the cluster `ray start` made here)")


def apply_ray_flag(cfg, ray_flag):
    """Fold --ray [ADDRESS] into cfg.RAY_ADDRESS, which picks the engine; returns cfg.

    No flag: the setting stays (None unless config or $RAY_ADDRESS sets it). A bare --ray: the
    setting if any, else "auto". Raises ConfigError when Ray is asked for but not installed.
    """
    if ray_flag is not None:
        cfg.RAY_ADDRESS = ray_flag or cfg.RAY_ADDRESS or "auto"
    check_ray_installed(cfg)
    return cfg


def load_sharded_config(args):
    """(cfg, part, count) from the --config, --ray and --shard flags of a per-video stage (00, 01a)."""
    cfg = apply_ray_flag(load_config(args.config), args.ray)
    part, count = parse_shard(args.shard)
    return cfg, part, count


class VerboseAction(argparse.Action):
    """--verbose: sets DEEPFAKE_DETECT_VERBOSE=1 as it is parsed, so that devices.configure_tensorflow
    (in this process and in the workers it starts) lets TensorFlow's start-up messages through."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from deepfake_detect.models.devices import VERBOSE_VARIABLE

        os.environ[VERBOSE_VARIABLE] = "1"
        setattr(namespace, self.dest, True)


def new_parser(doc, shard=False):
    """A stage's argparse parser: the script's docstring as description, --config, --verbose,
    and with `shard` also --shard K/N."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(parser)
    parser.add_argument("--verbose", action=VerboseAction,
                        help="also show TensorFlow's own start-up messages (hidden by default)")
    if shard:
        add_shard_argument(parser)
        parser.add_argument("--clean-partials", action="store_true",
                            help="also delete the unfinished folders that other machines left in the "
                                 "output folder: only when no other machine is writing to it (docs/scale.md)")
    return parser


def new_per_video_parser(doc, workers_help):
    """The parser of a stage that runs one job per video (00, 01a): --config, --verbose, --shard,
    --workers (described by `workers_help`) and --ray."""
    parser = new_parser(doc, shard=True)
    parser.add_argument("--workers", type=int, default=None, help=workers_help)
    add_ray_argument(parser)
    return parser
