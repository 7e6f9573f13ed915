"""Mininet's classes, imported in one place. Importing Mininet makes every logger created afterwards a
MininetLogger with a console handler of its own (mininet/log.py calls logging.setLoggerClass), which
prints the program's log lines twice and without newlines; this module gives the program plain
loggers back. Modules of the testbed import Mininet from here only."""

from __future__ import annotations

import logging

from mininet.link import Intf, TCIntf, TCULink
from mininet.net import Mininet
from mininet.node import Host, Switch

logging.setLoggerClass(logging.Logger)

__all__ = ["Host", "Intf", "Mininet", "Switch", "TCIntf", "TCULink"]
