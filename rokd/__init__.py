"""rokd: distil Romanian BERTs with one or several teachers (Avram et al., LREC 2022).

Data flows one way, one subpackage per step::

    data -> models (teachers, students) -> distill -> tasks -> loyalty -> report

``rokd.trainer`` and ``rokd.config`` are shared utilities below that chain.
"""

__version__ = "0.1.0"
