#pragma once
// Fixture for check_layering_detects_upward.
