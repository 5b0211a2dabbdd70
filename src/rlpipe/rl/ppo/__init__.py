"""Proximal Policy Optimization as an algorithm plugin: config, networks, losses, the feed-forward iteration
(``algorithm``), its variants (``recurrent``, ``imitation``) and the family registered as "ppo" (``plugin``)."""
