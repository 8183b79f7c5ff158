"""The activity record the supervisor reads while the checking process runs on."""

import multiprocessing

from gradcheck_cli.execution.usercode import Activity


def _activity() -> Activity:
    activity = Activity(multiprocessing.get_context())
    activity.enter("f.py:loss")
    return activity


def test_a_move_is_named_with_its_entry():
    activity = _activity()
    activity.batch(("W", (8, 3), "entry"))
    activity.move(4)
    assert activity.read().context == "with W[1, 1] moved"


def test_a_read_torn_between_two_batches_names_the_input_not_a_wrong_entry():
    # The supervisor reads the batch's text, then the numbers; a quick check can have
    # started the next batch (and moved its entry 4) in between: b has only 3 entries.
    activity = _activity()
    activity.batch(("b", (3,), "entry"))
    activity._numbers[2] = 4.0  # what the next batch's move(4) writes
    assert activity.read().context == "with b moved"
