using EptFuzz.Reference;

namespace EptFuzz.Reference.Tests;

/// <summary>The thin driver: each row's outcome, its rule, and its A/D writes.</summary>
public sealed class ModelCaseTests
{
    public static TheoryData<string> Rows => Cases.Names();

    [Theory]
    [MemberData(nameof(Rows))]
    public void Row(string name)
    {
        ModelCase row = Cases.All[name];
        Evaluation evaluation = row.Evaluate();

        Assert.Equal(row.Expected, evaluation.Outcome);
        Assert.True(evaluation.Fired.Contains(row.Rule), $"{name}: rule {Rules.RuleCatalog.Get(row.Rule).Name} did not fire");
        if (row.Writes is not null)
        {
            var written = new Dictionary<ulong, ulong>();
            foreach (PhysicalWrite write in evaluation.Writes)
            {
                written[write.Address.Value] = write.Value;
            }

            Assert.Equal(row.Writes.OrderBy(w => w.Key), written.OrderBy(w => w.Key));
        }
    }
}
