using EptFuzz.Contract;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Target;

namespace EptFuzz.Impl.Tests;

/// <summary>A hypervisor and a session of the target wired as the harness wires them: every effect is replayed.</summary>
internal sealed class Rig
{
    private readonly List<HypervisorEffect> effects = [];

    public Rig(CpuCapabilities? cpu = null, EptpRequest? eptp = null, int poolCapacity = 1 << 16)
    {
        Cpu = cpu ?? CpuCapabilities.Default;
        Hypervisor = new EptHypervisor(poolCapacity);
        Assert.Equal(ApiResult.Ok, Hypervisor.Configure(Cpu));
        Session = (ImplTargetSession)new ImplTarget().Open(Cpu);
        if (eptp is not null)
        {
            Assert.Equal(ApiResult.Ok, Hypervisor.SetEptp(eptp));
        }

        Sync();
    }

    public CpuCapabilities Cpu { get; }

    public EptHypervisor Hypervisor { get; }

    public ImplTargetSession Session { get; }

    /// <summary>Effects replayed so far (the last sync's only).</summary>
    public List<HypervisorEffect> LastEffects { get; } = [];

    public void Sync()
    {
        effects.Clear();
        Hypervisor.DrainEffects(effects);
        LastEffects.Clear();
        LastEffects.AddRange(effects);
        foreach (HypervisorEffect effect in effects)
        {
            if (effect.Kind == EffectKind.Write)
            {
                Session.Write(effect.Write);
            }
            else if (effect.Kind == EffectKind.Page)
            {
                Session.WritePage(effect.Write.Address, effect.Words);
            }
            else
            {
                Session.Invept(effect.InveptType);
            }
        }

        Session.SetEptp(Hypervisor.Eptp);
        Session.SetControls(Hypervisor.Controls);
    }

    public ApiResult Do(Func<EptHypervisor, ApiResult> operation)
    {
        ApiResult result = operation(Hypervisor);
        Sync();
        return result;
    }

    public void Ok(Func<EptHypervisor, ApiResult> operation) => Assert.Equal(ApiResult.Ok, Do(operation));

    public void Map(ulong gpa, ulong hpa, ulong size, EptPermissions permissions = Rwx, MemoryType type = MemoryType.WB, bool ignorePat = false) =>
        Ok(h => h.Map(new Gpa(gpa), new Hpa(hpa), size, permissions, type, ignorePat));

    public void GuestPaging(GuestPaging paging, ulong tablesStart, ulong tablesEnd)
    {
        Ok(h => h.SetGuestPaging(paging, new Gpa(tablesStart), new Gpa(tablesEnd)));
        Session.SetGuestPaging(paging);
    }

    public Observation Probe(AccessKind kind, ulong gpa) =>
        Session.Submit(Contract.Probe.ForAccess(0, Access.Physical(kind, new Gpa(gpa))))!;

    public Observation ProbeLinear(AccessKind kind, ulong gva, byte cpl = 0) =>
        Session.Submit(Contract.Probe.ForAccess(0, Access.ThroughPaging(kind, new Gva(gva), cpl)))!;

    public Observation Entry(ulong gpa, EptLevel level) =>
        Session.Submit(Contract.Probe.ForEntry(0, new Gpa(gpa), level))!;

    public const EptPermissions Rwx = EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess;

    public const ulong K4 = 1UL << 12;
    public const ulong M2 = 1UL << 21;
    public const ulong G1 = 1UL << 30;
}
