using EptFuzz.Contract;

namespace EptFuzz.Impl.Target;

/// <summary>The implementation's virtual CPU as a translator ("impl"): answers every probe at once.</summary>
public sealed class ImplTarget : ITarget
{
    private readonly bool cachesTranslations;

    /// <param name="cachesTranslations">
    /// False: the virtual CPU walks on every access (no TLB), so its <see cref="Observation.Walk"/>
    /// lists every entry a non-caching translator reads; useful for exact walk comparisons.
    /// </param>
    public ImplTarget(bool cachesTranslations = true)
    {
        this.cachesTranslations = cachesTranslations;
    }

    public string Name => "impl";

    public TargetTraits Traits =>
        TargetTraits.MemoryType | TargetTraits.AccessedDirtyWrites | TargetTraits.Walk | TargetTraits.Entries
        | TargetTraits.VmEntry | TargetTraits.Immediate | TargetTraits.AdvancedExitInfo | TargetTraits.Mbec | TargetTraits.TranslatedGpa | TargetTraits.TranslatedPermissions
        | (cachesTranslations ? TargetTraits.CachesTranslations : TargetTraits.None);

    /// <summary>This target does not model rules; <see cref="Observation.Rules"/> stays empty.</summary>
    public IReadOnlyList<string> RuleNames => [];

    public ITargetSession Open(CpuCapabilities cpu) => new ImplTargetSession(cpu) { CachesTranslations = cachesTranslations };
}
