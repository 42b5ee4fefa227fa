"""Tests of what publishing the repository needs: releases, workflows, the one version."""
