"""``nbseg COMMAND ...``: :mod:`.main` builds the parser; :mod:`.train`, :mod:`.predict` and
:mod:`.labels` register their sub-commands; :mod:`.args` holds the helpers they share."""
