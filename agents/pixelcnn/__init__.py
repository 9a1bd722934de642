"""The PixelCNN experiments: their config, frame collection with the project's envs, and training."""
