using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Targets.Vmx;

/// <summary>The Bochs back end (Debian bochs + bochs-sdl, headless): runs everywhere, including CI.</summary>
public sealed class BochsTarget(BochsOptions options) : VmxTarget(new BochsEmulator(options), options)
{
    public BochsTarget()
        : this(new BochsOptions())
    {
    }

    public BochsOptions Options { get; } = options;

    private protected override string Describe() => $"bochs ({Options.CpuModel})";

    private protected override bool IsBochs => true;
}
