# Copyright: sne.guichet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the progress of a play (:mod:`_progress`) reads of Ansible's plays, tasks and results.

This API is private to the sne.guichet collection; it may change without notice.
Controller side. Every attribute is read with a default, so that an object of another
ansible-core version (2.19 renamed the attributes of a result) or a stand-in gives what it
can rather than an error; only names, keys and counts are taken, never the content of a result
(set_fact results are looked at for the key of the fleet signal, never its value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable, List, Optional, Tuple

from ansible.utils.helpers import pct_to_int

# The fact a host sets (with set_fact) once its work is done: the fleet signal.
SIGNAL = "sne_host_report"
_SET_FACT = frozenset(("set_fact", "ansible.builtin.set_fact", "ansible.legacy.set_fact"))


def batch_sizes(total: int, serial: Any) -> List[int]:
    """The sizes of the batches of a play, as ansible-playbook cuts them (``serial``)."""
    if isinstance(serial, (list, tuple)):
        items = list(serial)
    elif serial in (None, ""):
        items = []
    else:
        items = [serial]
    if not items:
        return [total] if total else []
    sizes: List[int] = []
    left, index = total, 0
    while left > 0:
        size = pct_to_int(items[index], total)
        if size <= 0:
            sizes.append(left)
            break
        sizes.append(min(size, left))
        left -= sizes[-1]
        index = min(index + 1, len(items) - 1)
    return sizes


def key_of(item: Any) -> Any:
    """What tells a play or a task from the others: its uuid, else the object itself."""
    return getattr(item, "_uuid", None) or id(item)


def name_of(host: Any) -> str:
    name = getattr(host, "name", None)
    if not isinstance(name, str):
        getter = getattr(host, "get_name", None)
        name = getter() if callable(getter) else host
    return str(name)


def names(hosts: Iterable[Any]) -> List[str]:
    return [name_of(h) for h in hosts]


def task_name(task: Any) -> str:
    name = getattr(task, "name", None)
    if not name:
        getter = getattr(task, "get_name", None)
        name = getter() if callable(getter) else getattr(task, "action", "task")
    return str(name).strip()


def play_hosts(play: Any) -> Tuple[Optional[List[str]], Optional[List[str]]]:
    """(hosts of the current batch, hosts of the play in every batch), or None when unknown."""
    getter = getattr(play, "get_variable_manager", None)
    manager = getter() if callable(getter) else None
    inventory = getattr(manager, "_inventory", None)
    pattern = getattr(play, "hosts", None) or "all"
    try:
        order = getattr(play, "order", None)
        batch = names(inventory.get_hosts(pattern, order=order))
        every = names(inventory.get_hosts(pattern, order=order, ignore_restrictions=True))
        return batch, every
    except Exception:
        pass
    try:  # the same lists as the play's magic variables
        variables = manager.get_vars(play=play)
        return list(variables["ansible_play_batch"]), list(variables["ansible_play_hosts_all"])
    except Exception:
        return None, None


def result_host(result: Any) -> str:
    host = getattr(result, "host", None)  # ansible-core >= 2.19
    if host is None:
        host = getattr(result, "_host", None)
    return name_of(host)


def result_task(result: Any) -> Any:
    task = getattr(result, "task", None)  # ansible-core >= 2.19
    return task if task is not None else getattr(result, "_task", None)


def result_data(result: Any) -> Mapping:
    data = getattr(result, "result", None)  # ansible-core >= 2.19
    if not isinstance(data, Mapping):
        data = getattr(result, "_result", None)
    return data if isinstance(data, Mapping) else {}


def is_changed(result: Any) -> bool:
    check = getattr(result, "is_changed", None)
    if callable(check):
        return bool(check())
    return bool(result_data(result).get("changed"))


def ancestry(task: Any) -> Iterable[tuple]:
    """(child, parent) pairs from a task up to its play: blocks, include tasks."""
    child = task
    for _depth in range(256):
        parent = getattr(child, "_parent", None)
        if parent is None:
            return
        yield child, parent
        child = parent


def holds(section: Any, node: Any) -> bool:
    key = getattr(node, "_uuid", None)
    return isinstance(section, list) and key is not None and any(
        getattr(item, "_uuid", None) == key for item in section
    )


def is_set_fact(task: Any) -> bool:
    return any(getattr(task, attr, None) in _SET_FACT for attr in ("_resolved_action", "action"))


def signals(task: Any, data: Mapping) -> bool:
    """Whether a set_fact result sets the fleet signal (keys only: never a value)."""
    args = getattr(task, "args", None)
    if isinstance(args, Mapping) and SIGNAL in args:
        return True
    facts = [data.get("ansible_facts")]
    items = data.get("results")
    if isinstance(items, list):
        facts.extend(item.get("ansible_facts") for item in items if isinstance(item, Mapping))
    return any(isinstance(f, Mapping) and SIGNAL in f for f in facts)
