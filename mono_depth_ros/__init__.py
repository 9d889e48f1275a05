"""
mono_depth_ros: metric depth images and point clouds from one RGB camera.

The package is the runtime: importing it never imports torch, rclpy or TensorRT.
"""

__version__ = '0.1.0'
