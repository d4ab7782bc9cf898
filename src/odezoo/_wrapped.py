"""A diffrax solver that wraps another and answers diffrax's questions about it (its
terms, interpolation, orders) with the wrapped solver's answers: the shared part of
odezoo's solver wrappers, which differ only in how they step."""

import diffrax


class AbstractDelegatingSolver(diffrax.AbstractWrappedSolver):
    """A `diffrax.AbstractWrappedSolver` whose term structure, interpolation, orders and
    compatible control arguments are those of `self.solver`; a subclass defines the
    `solver` field and its own `init`/`step`/`func`."""

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # pyright: ignore
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)
