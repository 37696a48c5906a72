# SPDX-License-Identifier: Apache-2.0
"""The realistic benign corpus and the post-exploitation techniques played beside it.

``spec`` defines the containers and techniques (one place: the e2e test and
``scripts/bench/detection_quality.py`` both import it), ``images/`` holds their image
definitions, ``run`` plays a whole run against a real agent and ``report`` scores it.
"""
