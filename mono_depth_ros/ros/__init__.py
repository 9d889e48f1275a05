"""ROS 2 glue: nodes, parameters, message conversion, sample camera."""
