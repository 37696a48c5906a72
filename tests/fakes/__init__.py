# SPDX-License-Identifier: Apache-2.0
"""Local fakes of services that cannot run here, speaking their real wire protocols."""
