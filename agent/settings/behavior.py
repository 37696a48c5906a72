# SPDX-License-Identifier: Apache-2.0
"""Config section ``behavior``: windows, baselines, deviation scoring, modes, syscall chains."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.settings.base import Section


class BehaviorModeSettings(Section):
    """Behaviour-mode clustering of an image's normal windows."""

    enabled: bool = True
    # Clustering of normal windows into modes: kmeans (k chosen by silhouette up to max_k) or dbscan.
    algorithm: Literal["kmeans", "dbscan"] = "kmeans"
    # k-means: number of modes; 0 picks 1..max_k by silhouette score.
    k: int = Field(default=0, ge=0)
    # Most modes k-means may choose when k is 0.
    max_k: int = Field(default=6, ge=1)
    # DBSCAN neighbourhood radius in robust-scaled feature units, and core-point size.
    dbscan_eps: float = Field(default=1.5, gt=0)
    # DBSCAN's min_samples.
    dbscan_min_samples: int = Field(default=4, ge=1)
    # A window is a mode deviation when its distance to the nearest mode exceeds that mode's
    # radius (the ``quantile`` of its training distances) times this factor.
    distance_factor: float = Field(default=2.0, gt=0)
    # Peer outlier: total-variation distance between one replica's mode mix (last
    # ``peer_windows`` windows) and the pooled mix of the other replicas of the image.
    peer_windows: int = Field(default=30, ge=2)
    # Windows a replica needs before its mode mix is compared with its peers'.
    peer_min_windows: int = Field(default=10, ge=2)
    # A replica whose mode mix is farther than this (total variation distance) from its peers' is a peer outlier.
    peer_tvd: float = Field(default=0.6, gt=0, le=1)


class SyscallChainSettings(Section):
    """The n-gram model of normal syscall chains (in-kernel transitions are bigrams)."""

    enabled: bool = True
    # A transition into a sensitive syscall whose share of the image's training transitions is
    # below this fraction is "rare" (0: only never-seen transitions count).
    rare_fraction: float = Field(default=0.0, ge=0, lt=1)


class BehaviorSequenceSettings(Section):
    """The calibrated sequence model of each image's syscall transition windows (seqwindow.py)."""

    enabled: bool = True
    # Share of an image's normal windows (held out per container while fitting) whose transition
    # counts score over the threshold: the sequence model's calibrated false-positive rate.
    target_fpr: float = Field(default=0.01, gt=0, lt=0.5)
    # Cross-fitting folds of the calibration (whole containers per fold when there are enough).
    folds: int = Field(default=5, ge=2, le=20)
    # A window over the threshold is a (medium) finding only when it also holds at least this
    # many distinct transitions the image never made while learning (0: every such window);
    # alone, the verdict is counted and explains the other behaviour findings.
    min_unseen: int = Field(default=3, ge=0)
    # Most surprising transitions named in each finding's explanation.
    surprising: int = Field(default=5, ge=1, le=50)


class BehaviorSettings(Section):
    """Behaviour analysis: per-image baselines, explained deviation, modes and syscall chains."""

    enabled: bool = True
    # Length of one behaviour window: every source's counts are joined per container per window.
    window_seconds: float = Field(default=10.0, gt=0)
    # Seconds of normal windows an image's baseline learns before it scores.
    learning_seconds: float = Field(default=600.0, ge=0)
    # Containers carrying this label share the baseline named by its value instead of their
    # image's ("" disables), e.g. a deployment name when replicas run differently tagged images.
    group_label: str = "riskguard.baseline"
    # Deviation detector: isolation forest (scikit-learn's, scored as pyod's IForest) or ECOD (empirical tails).
    algorithm: Literal["iforest", "ecod"] = "iforest"
    # Threshold = this quantile of the training windows' scores.
    quantile: float = Field(default=0.995, gt=0.5, lt=1)
    # Windows an image needs (besides learning_seconds) before its first model is fitted.
    min_windows: int = Field(default=30, ge=8)
    # Training windows kept per image (the newest); older ones are forgotten on refit.
    max_windows: int = Field(default=5000, ge=16)
    # Trees of the isolation forest.
    iforest_trees: int = Field(default=100, ge=10, le=1000)
    # Windows drawn to grow each tree.
    iforest_max_samples: int = Field(default=256, ge=16)
    # Random seed of model fitting (reproducible baselines).
    seed: int = 42
    # Fit in a short-lived child process so scikit-learn (about 100 MiB) never stays in the
    # daemon; false fits in-process (the import then stays for the process's lifetime).
    fit_in_subprocess: bool = True
    # A fit taking longer than this is abandoned (the previous model stays).
    fit_timeout_seconds: float = Field(default=300.0, gt=0)
    # Continued learning: clean windows extend the training set; refit this often (0: never).
    refit_seconds: float = Field(default=3600.0, ge=0)
    # A feature is "far outside" its normal range when its robust z-score reaches this; such a
    # window deviates even below the score threshold (isolation trees cannot split on a feature
    # that was constant during learning).
    novelty_z: float = Field(default=8.0, gt=0)
    # A score above the threshold is reported only when some feature has at least this robust
    # z-score, so every finding names what deviated.
    explain_min_z: float = Field(default=3.0, ge=0)
    # Features named in each explanation (largest deviations first).
    top_features: int = Field(default=5, ge=1, le=50)
    # Scoring runs in batches on the component's own thread.
    batch_size: int = Field(default=256, ge=1)
    # Windows are scored in batches at least this often.
    batch_seconds: float = Field(default=0.5, gt=0)
    # Windows waiting to be scored; beyond, they are counted as dropped.
    queue_size: int = Field(default=10000, ge=16)
    # One finding per container and detector at most this often.
    finding_cooldown_seconds: float = Field(default=60.0, ge=0)
    # A window is not learned from when an open finding about the container's behaviour (not a
    # posture or vulnerability finding, severity medium or above) lies within this many seconds
    # of it; other windows of that container still are.
    taint_seconds: float = Field(default=300.0, ge=0)
    # Signed baseline documents (`riskguardctl baseline export IMAGE > FILE`) imported at start
    # from this directory, e.g. a Kubernetes ConfigMap mounted there, so a node starting a new
    # replica does not relearn its image ("" disables). Each document is imported once.
    baseline_import_dir: str = ""
    # The HMAC-SHA256 key that signs exported and verifies imported baselines; "" is
    # baseline.key in the state directory (32 random bytes, 0600, made on first use). Nodes
    # that share baselines share this key (e.g. a Kubernetes Secret).
    baseline_key_file: str = ""
    modes: BehaviorModeSettings = BehaviorModeSettings()
    syscall_chain: SyscallChainSettings = SyscallChainSettings()
    sequence: BehaviorSequenceSettings = BehaviorSequenceSettings()
