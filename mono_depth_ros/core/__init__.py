"""
ROS-free core of the package.

Camera model, geometry, point clouds, codecs, colour maps, model metadata, frame
processing and statistics.
"""
