//! Tests of the hub under paused time: added with the integration.
