"""Tests of what publishing the repository needs: releases, workflows, the README HACS shows, the one version."""
