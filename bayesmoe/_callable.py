"""Let a module be called as its main function, so ``bayesmoe.report(...)`` and ``bayesmoe.report.html``
both work (a submodule import would otherwise replace a function of the same name on the package)."""
import sys
import types


def make_callable(module_name: str, function_name: str) -> None:
    """Make ``sys.modules[module_name](...)`` call its attribute ``function_name``."""
    module = sys.modules[module_name]

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(self, function_name)(*args, **kwargs)

    CallableModule.__call__.__doc__ = getattr(module, function_name).__doc__
    module.__class__ = CallableModule
