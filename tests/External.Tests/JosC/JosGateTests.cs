using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Targets.External;
using Xunit.Abstractions;

namespace EptFuzz.External.Tests.JosC;

/// <summary>
/// The release gate (<c>eptfuzz gate --targets model,impl,exec:jos-c</c>: the whole corpus plus the
/// fixed-seed random set) against the C sample's shipped build: every case passes, or needs an
/// operation the sample does not declare and is reported unsupported; nothing diverges.
/// </summary>
public sealed class JosGateTests(ITestOutputHelper output)
{
    [SkippableNativeFact]
    public void Gate_PassesOnTheCSample()
    {
        var started = new List<ExternalTarget>();
        try
        {
            RunOptions options = JosSample.Detection.Options(JosSample.Build("jos-c"), started);
            var (files, errors) = CorpusReplay.FindCases([Path.Combine(RepositoryRoot.Path, "corpus")]);
            Assert.Empty(errors);
            var results = files.Select(f => CorpusReplay.RunFile(f, options)).ToList();
            var generated = RandomSet.Generate(RandomSet.DefaultSeed, 200, new GeneratorProfile { Features = options.Features });
            results.AddRange(generated.Select(c => CaseRunner.Run(c, options)));

            var failed = results.Where(r => r.Status is not (CaseStatus.Passed or CaseStatus.Unsupported)).ToList();
            int passed = results.Count(r => r.Status == CaseStatus.Passed);
            output.WriteLine($"{results.Count} cases: {passed} passed, {results.Count(r => r.Status == CaseStatus.Unsupported)} unsupported, {failed.Count} other");
            Assert.True(failed.Count == 0, string.Join(Environment.NewLine, failed.Select(r => $"{r.File}: {r.Status} {r.Message}")));
            // The sample declares map, unmap, protect, identity-map and invept: most cases run.
            Assert.True(passed >= 200, $"only {passed} cases ran to a pass");
        }
        finally
        {
            ExternalDetection.Dispose(started);
        }
    }
}
