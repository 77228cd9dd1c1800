"""InfoGAN's mutual-information term (Chen et al. 2016, eq. 5): lambda times the negative
variational bound -E[log Q(c | G(z, c))], with Q a head on D's trunk (``D.info_loss``, which
weighs the categorical and continuous codes). Q is trained in D's update on the detached fakes;
G minimises the same bound in its update, so its codes stay readable from G(z, c)."""

from __future__ import annotations

from torch import Tensor

from genlab.objectives.terms import Stats, Step, Term


class MutualInformation(Term):
    def _bound(self, s: Step) -> tuple[Tensor, Stats]:
        D, G = s.nets["D"], s.nets["G"]
        with s.amp:
            return D.info_loss(s.fake, s.y, G.codes(s.z))

    def discriminator(self, s: Step) -> tuple[Tensor, Stats]:
        return self._bound(s)

    def generator(self, s: Step) -> tuple[Tensor, Stats]:
        info, _ = self._bound(s)
        return info, {"loss_info": info.detach()}
