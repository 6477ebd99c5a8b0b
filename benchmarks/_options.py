"""A benchmark's command line, read from the keyword defaults of its main function.

Each benchmark ends with `run_with_options(main, __doc__)`: every parameter of `main` becomes an option
(`--n-bars` for `n_bars`), typed like its default; a `False` default makes a switch."""

import argparse
import inspect


def run_with_options(main, doc: str, **help_texts):
    "Call `main` with the options of its keyword defaults as given on the command line."
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, param in inspect.signature(main).parameters.items():
        flag = '--' + name.replace('_', '-')
        if param.default is False:
            ap.add_argument(flag, action='store_true', help=help_texts.get(name))
        else:
            ap.add_argument(flag, type=type(param.default), default=param.default, help=help_texts.get(name))
    return main(**vars(ap.parse_args()))
