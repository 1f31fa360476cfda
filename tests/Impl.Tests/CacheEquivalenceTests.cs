using EptFuzz.Contract;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Target;
using static EptFuzz.Impl.Tests.Rig;

namespace EptFuzz.Impl.Tests;

/// <summary>
/// Without raw writes nothing may be stale, so a CPU with a TLB must observe exactly what a CPU
/// without one observes (outcome, addresses, qualification, type, and the final memory with all
/// A/D flags): random hypervisor operations and guest accesses, replayed to both.
/// </summary>
public sealed class CacheEquivalenceTests
{
    [Theory]
    [InlineData(7UL, false)]
    [InlineData(7UL, true)]
    [InlineData(0xFEEDUL, true)]
    [InlineData(0xBADC0DEUL, false)]
    public void CachingAndNonCachingCpus_ObserveTheSame(ulong seed, bool accessedDirty)
    {
        var random = new SplitMix64(seed);
        var cpu = CpuCapabilities.Default with { Mbec = true, AdvancedExitInfo = true };
        var hypervisor = new EptHypervisor();
        Assert.Equal(ApiResult.Ok, hypervisor.Configure(cpu));
        Assert.Equal(ApiResult.Ok, hypervisor.SetEptp(new EptpRequest { AccessedDirty = accessedDirty }));
        Assert.Equal(ApiResult.Ok, hypervisor.SetControls(new VmxControls(Mbec: random.Below(2) == 0)));
        var cached = (ImplTargetSession)new ImplTarget().Open(cpu);
        var walking = (ImplTargetSession)new ImplTarget(cachesTranslations: false).Open(cpu);
        var effects = new List<HypervisorEffect>();

        void Replay()
        {
            effects.Clear();
            hypervisor.DrainEffects(effects);
            foreach (ImplTargetSession session in new[] { cached, walking })
            {
                foreach (HypervisorEffect effect in effects)
                {
                    if (effect.Kind == EffectKind.Write)
                    {
                        session.Write(effect.Write);
                    }
                    else if (effect.Kind == EffectKind.Page)
                    {
                        session.WritePage(effect.Write.Address, effect.Words);
                    }
                    else
                    {
                        session.Invept(effect.InveptType);
                    }
                }

                session.SetEptp(hypervisor.Eptp);
                session.SetControls(hypervisor.Controls);
                session.SetGuestPaging(hypervisor.GuestPaging);
            }
        }

        // Guest RAM [0, 16 MiB) identity-mapped; guest tables at 1 MiB; guest maps of 8 MiB at 1 GiB linear.
        Assert.Equal(ApiResult.Ok, hypervisor.AddMemoryRange(new Gpa(0), new Gpa(16 << 20), MemoryType.WB));
        Assert.Equal(ApiResult.Ok, hypervisor.IdentityMap(0, new Gpa(0)));
        var paging = new GuestPaging { Enabled = true, Cr3 = new Gpa(0xFF000), Nxe = true };
        Assert.Equal(ApiResult.Ok, hypervisor.SetGuestPaging(paging, new Gpa(0x100000), new Gpa(0x200000)));
        for (ulong page = 0; page < 2048; page += 1 + (ulong)random.Below(3))
        {
            bool big = random.Below(16) == 0 && page % 512 == 0;
            hypervisor.GMap(new Gva(G1 + page * K4), new Gpa((4 << 20) + (page * K4 % (8 << 20))), big ? M2 : K4,
                random.Below(2) == 0, random.Below(3) != 0, random.Below(2) == 0);
        }

        Replay();
        EptPermissions[] sets = [Rwx, EptPermissions.ReadAccess, EptPermissions.ReadAccess | EptPermissions.WriteAccess, EptPermissions.ReadAccess | EptPermissions.UserModeExecute, EptPermissions.None];
        int translated = 0, hits = 0;
        for (int step = 0; step < 3000; step++)
        {
            if (random.Below(40) == 0)
            {
                ulong gpa = (ulong)random.Below(1024) * K4;
                ulong size = random.Below(4) == 0 ? M2 : K4;
                gpa &= ~(size - 1);
                switch (random.Below(4))
                {
                    case 0:
                        hypervisor.Protect(new Gpa(gpa), size, sets[random.Below(sets.Length)]);
                        break;
                    case 1:
                        hypervisor.Retype(new Gpa(gpa), size, random.Below(2) == 0 ? MemoryType.UC : MemoryType.WB, random.Below(2) == 0);
                        break;
                    case 2:
                        hypervisor.Merge(new Gpa(gpa & ~(M2 - 1)), M2);
                        break;
                    default:
                        if (hypervisor.Unmap(new Gpa(gpa), K4) == ApiResult.Ok && random.Below(2) == 0)
                        {
                            hypervisor.Map(new Gpa(gpa), new Hpa(gpa ^ 0x1000), K4, Rwx, MemoryType.WB, false);
                        }

                        break;
                }

                Replay();
                continue;
            }

            var kind = (AccessKind)random.Below(3);
            Access access = random.Below(2) == 0
                ? Access.Physical(kind, new Gpa((ulong)random.Below(1024) * K4 + (ulong)random.Below(512) * 8))
                : Access.ThroughPaging(kind, new Gva(G1 + (ulong)random.Below(256) * K4 + (ulong)random.Below(512) * 8), (byte)(random.Below(2) * 3));
            var fromTlb = cached.Cpu.Access(access);
            hits += fromTlb.FromCache ? 1 : 0;
            Observation a = fromTlb.ToObservation();
            Observation b = walking.Submit(Probe.ForAccess(step, access))!;
            Assert.Equal(b with { Walk = [], Writes = [] }, a with { Walk = [], Writes = [] });
            translated += a.Kind == OutcomeKind.Translated ? 1 : 0;
        }

        Assert.InRange(translated, 200, 3000);
        // The comparison means something only if the TLB really served accesses.
        Assert.InRange(hits, 150, 3000);
        foreach (Hpa page in walking.Memory.Pages.Concat(cached.Memory.Pages))
        {
            for (ulong offset = 0; offset < 4096; offset += 8)
            {
                Assert.Equal(walking.Memory.Read(page + offset), cached.Memory.Read(page + offset));
            }
        }
    }
}
