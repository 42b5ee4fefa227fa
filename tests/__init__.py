"""Tests of the Tencent IoT Gateway integration, its engine and its cloud emulator."""
