"""Stage ``report``: one self-contained HTML page of the run (``collect`` reads, ``figures`` draws, ``page`` writes).

Stages never write HTML themselves: each leaves metrics and plots, and this
package gathers them (nanochat's report card). The 3D viewer is a separate
JavaScript bundle (``viewer/``, built by ``make env`` when node is present)
that ``page`` inlines with the avatars; nothing on the page is fetched.
"""
