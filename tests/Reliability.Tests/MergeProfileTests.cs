using EptFuzz.Harness.Fuzzing;
using EptFuzz.Reliability.Tests.Support;

namespace EptFuzz.Reliability.Tests;

/// <summary>Issue 17, item 7: merge refuses campaigns of different profiles unless asked, and a merged campaign says it cannot be resumed.</summary>
public sealed class MergeProfileTests : IDisposable
{
    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    private (string A, string B) TwoProfiles()
    {
        string a = temp["a"], b = temp["b"];
        new Campaign(RealTargets.Campaign(a, runs: 30)).Run(CancellationToken.None);
        new Campaign(RealTargets.Campaign(b, runs: 30) with { Profile = new GeneratorProfile { Steps = 48, ProbeWeight = 400 } }).Run(CancellationToken.None);
        return (a, b);
    }

    [Fact]
    public void DifferentProfiles_AreRefused_NamingEach()
    {
        (string a, string b) = TwoProfiles();
        string into = temp["merged"];

        var refused = Assert.Throws<CampaignUsageException>(() => CampaignMerge.Merge([a, b], into));

        Assert.Contains($"{a}: generator {CaseGenerator.Version} --cpu-profile random --steps 32 --probe-weight {GeneratorProfile.DefaultProbeWeight}", refused.Message, StringComparison.Ordinal);
        Assert.Contains($"{b}: generator {CaseGenerator.Version} --cpu-profile random --steps 48 --probe-weight 400", refused.Message, StringComparison.Ordinal);
        Assert.Contains("--allow-mixed-profiles", refused.Message, StringComparison.Ordinal);
        Assert.False(CampaignStats.Exists(into));
    }

    [Fact]
    public void DifferentProfiles_WhenAllowed_AreRecordedEach()
    {
        (string a, string b) = TwoProfiles();
        string into = temp["merged"];

        CampaignMerge.Merge([a, b], into, allowMixedProfiles: true);

        CampaignStats merged = CampaignStats.Load(into, out string error) ?? throw new InvalidOperationException(error);
        Assert.Equal("mixed", merged.CpuProfile);
        Assert.Equal(2, merged.InputProfiles.Count);
        Assert.Contains("--steps 48 --probe-weight 400", merged.InputProfiles[1], StringComparison.Ordinal);
        Assert.Contains("merged from mixed profiles", HtmlReport.Render(into, merged), StringComparison.Ordinal);
    }

    [Fact]
    public void AMergedCampaign_SaysItCannotBeResumed_AndHowToGoOn()
    {
        string a = temp["a"], b = temp["b"], into = temp["merged"];
        new Campaign(RealTargets.Campaign(a, runs: 30)).Run(CancellationToken.None);
        new Campaign(RealTargets.Campaign(b, runs: 30) with { Shard = new Shard(2, 2) }).Run(CancellationToken.None);
        CampaignMerge.Merge([a, b], into);

        var refused = Assert.Throws<CampaignUsageException>(() => new Campaign(RealTargets.Campaign(into, runs: 1) with { Resume = true }).Run(CancellationToken.None));

        Assert.Contains("was made by 'eptfuzz merge' and cannot be resumed", refused.Message, StringComparison.Ordinal);
        Assert.Contains($"--corpus {Path.Combine(into, "queue")}", refused.Message, StringComparison.Ordinal);
    }
}
