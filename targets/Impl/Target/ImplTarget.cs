using EptFuzz.Contract;

namespace EptFuzz.Impl.Target;

/// <summary>The implementation's virtual CPU as a translator ("impl"): answers every probe at once.</summary>
public sealed class ImplTarget : ITarget
{
    public string Name => "impl";

    public TargetTraits Traits =>
        TargetTraits.MemoryType | TargetTraits.AccessedDirtyWrites | TargetTraits.Walk | TargetTraits.Entries
        | TargetTraits.VmEntry | TargetTraits.Immediate | TargetTraits.CachesTranslations
        | TargetTraits.AdvancedExitInfo | TargetTraits.Mbec;

    /// <summary>This target does not model rules; <see cref="Observation.Rules"/> stays empty.</summary>
    public IReadOnlyList<string> RuleNames => [];

    public ITargetSession Open(CpuCapabilities cpu) => new ImplTargetSession(cpu);
}
